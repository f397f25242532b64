//! Debt intake through `payops up`: a file dropped into the inbox (as an SFTP server backed by
//! S3 would write it) is split, registered and completed; `kill -9` while its sub-batches are
//! being registered loses nothing and registers nothing twice once the server is back; the
//! batch, the client's list and the rejected-lines CSV are served over HTTP.

use payops_core::debts::builtin_named;
use payops_core::debts::generate::{self, GenerateOptions};
use payops_e2e::{HttpClient, Server, eventually};
use serde_json::Value;

/// Three sub-batches at the default size of 10,000 lines.
const LINES: u64 = 25_000;
const DEFECT_EVERY: u64 = 500;

async fn batches(client: &HttpClient, base: &str) -> Value {
    client
        .get(&format!("{base}/debts/batches?client_id=acme"))
        .await
        .unwrap()
        .json()
        .unwrap()
}

#[tokio::test]
async fn a_dropped_file_completes_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = HttpClient::default();

    // The server judges due dates against its own (real) today, so the file is generated
    // for that day: a fixed date made the defects that depend on it expire with time.
    let today = payops_core::debts::bureau_today(chrono::Utc::now());
    let options = GenerateOptions {
        lines: LINES,
        seed: 9,
        today,
        defect_every: DEFECT_EVERY,
        reference_prefix: "E".into(),
    };
    let format = builtin_named("default").unwrap();
    let file = generate::file(&options, &format);
    let expected_rejected = generate::debts(&options, &format)
        .filter(|d| d.defect.is_some())
        .count() as u64;
    let inbox = dir.path().join("inbox/debts/acme");
    std::fs::create_dir_all(&inbox).unwrap();
    // Written under a hidden name and renamed into place, as SFTP servers do.
    std::fs::write(inbox.join(".upload.tmp"), &file).unwrap();
    std::fs::rename(inbox.join(".upload.tmp"), inbox.join("overdue-2026-11.csv")).unwrap();

    let base = server.base_url.clone();
    let batch_id = eventually("the batch to be processing", || async {
        let list = batches(&client, &base).await;
        let b = list["batches"].get(0)?;
        (b["status"] == "PROCESSING" || b["status"].as_str()?.starts_with("COMPLETED"))
            .then(|| b["batch_id"].as_str().unwrap().to_owned())
    })
    .await;
    server.kill9();

    let server = Server::start(dir.path());
    let base = server.base_url.clone();
    let batch: Value = eventually("the batch to complete after the restart", || async {
        let b: Value = client
            .get(&format!("{base}/debts/batches/{batch_id}"))
            .await
            .ok()?
            .json()
            .ok()?;
        b["status"].as_str()?.starts_with("COMPLETED").then_some(b)
    })
    .await;
    assert_eq!(batch["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(batch["client_id"], "acme");
    assert_eq!(batch["received"], LINES);
    assert_eq!(batch["processed"], LINES);
    assert_eq!(batch["rejected"], expected_rejected);
    assert_eq!(batch["accepted"], LINES - expected_rejected);
    assert_eq!(batch["sub_batches"], 3);
    assert_eq!(batch["sub_batches_done"], 3);

    let csv = client
        .get(&format!("{base}/debts/batches/{batch_id}/rejections.csv"))
        .await
        .unwrap();
    assert_eq!(csv.status, 200);
    let text = String::from_utf8(csv.body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "line,field,reason");
    assert_eq!(
        lines.len() as u64,
        1 + expected_rejected,
        "one problem per defect"
    );
    // The first defect is the 500th debt: line 501 of the file, after the header.
    assert!(lines[1].starts_with("501,cpf,"), "{}", lines[1]);
}
