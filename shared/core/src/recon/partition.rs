//! Hash partitions of `transaction_id`, so both inputs of a day split the same way and each
//! partition reconciles alone (threads here; a distributed Map over Lambdas in AWS).
//! FNV-1a 64 is fixed forever: the partition of an id must not change between releases or
//! between the writer of a partition file and its reader.

/// Most partitions a run may use (bounded by the state machine's Map and the file count).
pub const PARTITIONS_MAX: u32 = 4096;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of the id's bytes.
pub fn transaction_hash(transaction_id: &str) -> u64 {
    transaction_id.as_bytes().iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The partition (0..partitions) of a transaction id; `partitions` must be 1..=PARTITIONS_MAX.
pub fn partition_of(transaction_id: &str, partitions: u32) -> u32 {
    let p = u64::from(partitions.clamp(1, PARTITIONS_MAX));
    // The remainder is below `partitions`, itself a u32.
    (transaction_hash(transaction_id) % p) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_answers() {
        assert_eq!(transaction_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(transaction_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(transaction_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partitions_are_in_range_and_spread() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            let p = partition_of(&format!("tx_{i:08}"), 8);
            counts[p as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(partition_of("anything", 0), 0, "0 partitions means one");
    }
}
