//! How long a batch will take at the provider: from its rate limits and the work still to do.
//!
//! Entity and account writes and payment creations are limited separately (two endpoint
//! classes), so the two streams run side by side; payments of an employee wait for that
//! employee's account, so the estimate is the longer stream plus the first accounts' lead.

use serde::Serialize;

/// Provider writes to provision one employee (an entity and its loan account).
pub const WRITES_PER_EMPLOYEE: u64 = 2;
/// Provider writes to provision one payer (an entity and its source account).
pub const WRITES_PER_PAYER: u64 = 2;

/// The provider's allowed rates, per endpoint class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProviderRates {
    /// Entity and account writes per minute (0: unlimited).
    pub account_writes_per_minute: u64,
    /// Payments created per minute (0: unlimited).
    pub payments_per_minute: u64,
}

/// The work a batch still needs at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Remaining {
    pub employees_to_provision: u64,
    pub payers_to_provision: u64,
    pub payments_to_create: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub account_writes: u64,
    pub payments: u64,
    /// Whole seconds, rounded up. 0 when the provider is unlimited or nothing is left.
    pub seconds: u64,
}

fn seconds_for(units: u64, per_minute: u64) -> u64 {
    if per_minute == 0 || units == 0 {
        return 0;
    }
    (units.saturating_mul(60)).div_ceil(per_minute)
}

/// The estimated time to create what is left, at exactly the allowed rates.
pub fn estimate(remaining: Remaining, rates: ProviderRates) -> Estimate {
    let account_writes = remaining
        .employees_to_provision
        .saturating_mul(WRITES_PER_EMPLOYEE)
        .saturating_add(
            remaining
                .payers_to_provision
                .saturating_mul(WRITES_PER_PAYER),
        );
    let accounts_s = seconds_for(account_writes, rates.account_writes_per_minute);
    let payments_s = seconds_for(remaining.payments_to_create, rates.payments_per_minute);
    // The first payments wait for the payers and the first employee to be provisioned.
    let lead_s = seconds_for(
        (WRITES_PER_PAYER * remaining.payers_to_provision.min(1)) + WRITES_PER_EMPLOYEE,
        rates.account_writes_per_minute,
    )
    .min(accounts_s);
    Estimate {
        account_writes,
        payments: remaining.payments_to_create,
        seconds: accounts_s.max(payments_s.saturating_add(lead_s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slower_stream_decides() {
        let rates = ProviderRates {
            account_writes_per_minute: 600,
            payments_per_minute: 3000,
        };
        let e = estimate(
            Remaining {
                employees_to_provision: 10_000,
                payers_to_provision: 5,
                payments_to_create: 50_000,
            },
            rates,
        );
        // 20_010 account writes at 10/s: 2001 s; 50_000 payments at 50/s: 1000 s.
        assert_eq!(e.account_writes, 20_010);
        assert_eq!(e.seconds, 2001);
        let only_payments = estimate(
            Remaining {
                payments_to_create: 50_000,
                ..Remaining::default()
            },
            rates,
        );
        assert_eq!(only_payments.seconds, 1000);
    }

    #[test]
    fn unlimited_or_nothing_left_is_zero() {
        let unlimited = ProviderRates {
            account_writes_per_minute: 0,
            payments_per_minute: 0,
        };
        let r = Remaining {
            employees_to_provision: 5,
            payers_to_provision: 1,
            payments_to_create: 9,
        };
        assert_eq!(estimate(r, unlimited).seconds, 0);
        let limited = ProviderRates {
            account_writes_per_minute: 60,
            payments_per_minute: 60,
        };
        assert_eq!(estimate(Remaining::default(), limited).seconds, 0);
    }
}
