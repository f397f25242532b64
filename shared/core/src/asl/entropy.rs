//! Randomness as a port: `States.UUID`, `States.MathRandom` and retry jitter draw from an
//! `Entropy`, so tests inject a seeded source and get the same values every run.

use std::sync::atomic::{AtomicU64, Ordering};

pub trait Entropy: Send + Sync {
    fn next_u64(&self) -> u64;
}

/// SplitMix64: small, fast and good enough for ids and jitter (not for secrets).
#[derive(Debug)]
pub struct SeededEntropy {
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        SeededEntropy {
            state: AtomicU64::new(seed),
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Entropy for SeededEntropy {
    fn next_u64(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA))
    }
}

/// A uniform integer in `[0, bound)` without modulo bias. `bound` must be positive.
pub fn below(entropy: &dyn Entropy, bound: u128) -> u128 {
    if bound <= 1 {
        return 0;
    }
    // Rejection sampling over 128 random bits.
    let zone = u128::MAX - (u128::MAX % bound);
    loop {
        let r = (u128::from(entropy.next_u64()) << 64) | u128::from(entropy.next_u64());
        if r < zone {
            return r % bound;
        }
    }
}

/// A uniform fraction in `[0, 1]` (for jitter).
pub fn unit_fraction(entropy: &dyn Entropy) -> f64 {
    // 53 random bits: exactly representable in an f64 mantissa.
    (entropy.next_u64() >> 11) as f64 / ((1u64 << 53) - 1) as f64
}

/// A version-4 UUID built from the entropy source.
pub fn uuid_v4(entropy: &dyn Entropy) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&entropy.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&entropy.next_u64().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_repeatable_and_bounded() {
        let a = SeededEntropy::new(7);
        let b = SeededEntropy::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        for _ in 0..1000 {
            assert!(below(&a, 10) < 10);
            let f = unit_fraction(&a);
            assert!((0.0..=1.0).contains(&f));
        }
        assert_eq!(
            uuid_v4(&SeededEntropy::new(1)),
            uuid_v4(&SeededEntropy::new(1))
        );
        assert_eq!(uuid_v4(&a).get_version_num(), 4);
    }
}
