//! Lambda `recon-api`: see template.yaml for its trigger and ARCHITECTURE.md for its flow.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    payops_aws::lambda::run("recon-api").await
}
