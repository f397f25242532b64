//! Flag compliance: the active policy rules turn a transaction (and its merchant's profile)
//! into policy flags, and the flags combined with the fraud score give one assessment.

use std::fmt;

use rust_decimal::Decimal;

use super::types::{Merchant, RiskLevel};

/// At or above this fraud score a transaction needs a human look.
pub const FRAUD_SCORE_REVIEW: Decimal = Decimal::from_parts(70, 0, 0, false, 2);
/// At or above this fraud score a transaction is escalated whatever its flags.
pub const FRAUD_SCORE_ESCALATE: Decimal = Decimal::from_parts(90, 0, 0, false, 2);

/// The kind of a policy rule. Unknown kinds are kept (`Other`) and apply to nothing, so a new
/// rule type in the reference data never breaks a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyType {
    /// Identity checks above an amount.
    Kyc,
    /// Anti-money-laundering review above an amount (optionally only for some merchant risks).
    Aml,
    /// A per-currency limit on one transaction.
    RegionalLimit,
    /// Merchants of the listed risk levels are flagged.
    MerchantRisk,
    Other(String),
}

impl PolicyType {
    pub fn parse(text: &str) -> PolicyType {
        match text.trim().to_ascii_uppercase().as_str() {
            "KYC" => PolicyType::Kyc,
            "AML" => PolicyType::Aml,
            "REGIONAL_LIMIT" => PolicyType::RegionalLimit,
            "MERCHANT_RISK" => PolicyType::MerchantRisk,
            other => PolicyType::Other(other.to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            PolicyType::Kyc => "KYC",
            PolicyType::Aml => "AML",
            PolicyType::RegionalLimit => "REGIONAL_LIMIT",
            PolicyType::MerchantRisk => "MERCHANT_RISK",
            PolicyType::Other(s) => s,
        }
    }
}

/// One policy rule (reference data) with the parameters its type needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy_id: String,
    pub policy_type: PolicyType,
    pub rule_description: String,
    pub active: bool,
    /// The amount at (KYC, AML) or above (regional limit) which the rule fires.
    pub threshold: Option<Decimal>,
    /// Only transactions in this currency, when set.
    pub currency: Option<String>,
    /// Only merchants of these risk levels, when not empty.
    pub risk_levels: Vec<RiskLevel>,
}

/// One policy flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PolicyFlag {
    KycRequired = 1,
    AmlPending = 2,
    HighRiskMerchant = 4,
    RegionalLimitExceeded = 8,
}

impl PolicyFlag {
    pub const ALL: [PolicyFlag; 4] = [
        PolicyFlag::KycRequired,
        PolicyFlag::AmlPending,
        PolicyFlag::HighRiskMerchant,
        PolicyFlag::RegionalLimitExceeded,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyFlag::KycRequired => "KYC_REQUIRED",
            PolicyFlag::AmlPending => "AML_PENDING",
            PolicyFlag::HighRiskMerchant => "HIGH_RISK_MERCHANT",
            PolicyFlag::RegionalLimitExceeded => "REGIONAL_LIMIT_EXCEEDED",
        }
    }
    pub fn parse(text: &str) -> Option<PolicyFlag> {
        PolicyFlag::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// A set of policy flags, listed in a fixed order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PolicyFlags(u8);

impl PolicyFlags {
    pub const NONE: PolicyFlags = PolicyFlags(0);
    pub fn insert(&mut self, flag: PolicyFlag) {
        self.0 |= flag as u8;
    }
    pub fn contains(self, flag: PolicyFlag) -> bool {
        self.0 & flag as u8 != 0
    }
    pub fn union(self, other: PolicyFlags) -> PolicyFlags {
        PolicyFlags(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = PolicyFlag> {
        PolicyFlag::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }
    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn from_bits(bits: u8) -> PolicyFlags {
        PolicyFlags(bits & 0x0f)
    }
}

impl FromIterator<PolicyFlag> for PolicyFlags {
    fn from_iter<I: IntoIterator<Item = PolicyFlag>>(iter: I) -> Self {
        let mut flags = PolicyFlags::NONE;
        iter.into_iter().for_each(|f| flags.insert(f));
        flags
    }
}

/// The one compliance assessment of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assessment {
    /// No flag and a low (or no) fraud score.
    Clear,
    /// A flag or an elevated fraud score: a compliance analyst looks at it.
    Review,
    /// A very high fraud score, or risk indicators that compound: stop and investigate.
    Escalate,
}

impl Assessment {
    pub fn as_str(self) -> &'static str {
        match self {
            Assessment::Clear => "CLEAR",
            Assessment::Review => "REVIEW",
            Assessment::Escalate => "ESCALATE",
        }
    }
}

impl fmt::Display for Assessment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy flags the active rules raise for a transaction of `amount` in `currency` at a
/// merchant (whose profile may be unknown). A HIGH-risk merchant is always flagged: its
/// profile says so, whatever the rules.
pub fn policy_flags(
    amount: Decimal,
    currency: &str,
    merchant: Option<&Merchant>,
    policies: &[Policy],
) -> PolicyFlags {
    let risk = merchant.map(|m| m.risk_level);
    let mut flags = PolicyFlags::NONE;
    if risk == Some(RiskLevel::High) {
        flags.insert(PolicyFlag::HighRiskMerchant);
    }
    let size = amount.abs();
    for policy in policies.iter().filter(|p| p.active) {
        if !applies_to(policy, currency, risk) {
            continue;
        }
        let reached = policy.threshold.is_some_and(|t| size >= t);
        let exceeded = policy.threshold.is_some_and(|t| size > t);
        match policy.policy_type {
            PolicyType::Kyc if reached => flags.insert(PolicyFlag::KycRequired),
            PolicyType::Aml if reached => flags.insert(PolicyFlag::AmlPending),
            PolicyType::RegionalLimit if exceeded => {
                flags.insert(PolicyFlag::RegionalLimitExceeded)
            }
            PolicyType::MerchantRisk if risk.is_some() => {
                flags.insert(PolicyFlag::HighRiskMerchant)
            }
            _ => {}
        }
    }
    flags
}

fn applies_to(policy: &Policy, currency: &str, risk: Option<RiskLevel>) -> bool {
    let currency_ok = policy
        .currency
        .as_deref()
        .is_none_or(|c| c.eq_ignore_ascii_case(currency));
    // A rule limited to some risk levels does not apply to a merchant without a profile.
    let risk_ok =
        policy.risk_levels.is_empty() || risk.is_some_and(|r| policy.risk_levels.contains(&r));
    currency_ok && risk_ok
}

/// Fraud score and flags into one assessment. An unknown score counts as no fraud signal.
pub fn flag_compliance(fraud_score: Option<Decimal>, flags: PolicyFlags) -> Assessment {
    let score = fraud_score.unwrap_or(Decimal::ZERO);
    let risky_flag = flags.contains(PolicyFlag::AmlPending)
        || flags.contains(PolicyFlag::RegionalLimitExceeded)
        || flags.contains(PolicyFlag::HighRiskMerchant);
    let aml_at_risky_merchant =
        flags.contains(PolicyFlag::AmlPending) && flags.contains(PolicyFlag::HighRiskMerchant);
    if score >= FRAUD_SCORE_ESCALATE
        || (score >= FRAUD_SCORE_REVIEW && risky_flag)
        || aml_at_risky_merchant
    {
        Assessment::Escalate
    } else if score >= FRAUD_SCORE_REVIEW || !flags.is_empty() {
        Assessment::Review
    } else {
        Assessment::Clear
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test literal")
    }

    fn policy(kind: PolicyType, threshold: &str, currency: Option<&str>) -> Policy {
        Policy {
            policy_id: "p".into(),
            policy_type: kind,
            rule_description: "test".into(),
            active: true,
            threshold: Some(d(threshold)),
            currency: currency.map(str::to_owned),
            risk_levels: vec![],
        }
    }

    fn merchant(risk: RiskLevel) -> Merchant {
        Merchant {
            merchant_id: "m1".into(),
            merchant_name: "Shop".into(),
            risk_level: risk,
            onboarding_date: None,
        }
    }

    #[test]
    fn thresholds_raise_their_flags() {
        let policies = [
            policy(PolicyType::Kyc, "1000", None),
            policy(PolicyType::Aml, "10000", None),
            policy(PolicyType::RegionalLimit, "5000", Some("BRL")),
        ];
        let low = merchant(RiskLevel::Low);
        let flags = |amount: &str, cur: &str| {
            policy_flags(d(amount), cur, Some(&low), &policies)
                .iter()
                .map(PolicyFlag::as_str)
                .collect::<Vec<_>>()
        };
        assert!(flags("999.99", "USD").is_empty());
        assert_eq!(flags("1000", "USD"), ["KYC_REQUIRED"]);
        assert_eq!(
            flags("-1000", "USD"),
            ["KYC_REQUIRED"],
            "refunds count by size"
        );
        assert_eq!(
            flags("5000", "BRL"),
            ["KYC_REQUIRED"],
            "limit is exceeded above it"
        );
        assert_eq!(
            flags("5000.01", "BRL"),
            ["KYC_REQUIRED", "REGIONAL_LIMIT_EXCEEDED"]
        );
        assert_eq!(flags("6000", "USD"), ["KYC_REQUIRED"], "limit is BRL only");
        assert_eq!(flags("10000", "USD"), ["KYC_REQUIRED", "AML_PENDING"]);
    }

    #[test]
    fn inactive_and_unknown_rules_do_nothing() {
        let mut off = policy(PolicyType::Kyc, "1", None);
        off.active = false;
        let other = policy(PolicyType::parse("SANCTIONS"), "1", None);
        assert_eq!(other.policy_type.as_str(), "SANCTIONS");
        assert!(policy_flags(d("100"), "USD", None, &[off, other]).is_empty());
    }

    #[test]
    fn merchant_risk_levels_limit_rules_and_high_risk_is_flagged() {
        let mut aml = policy(PolicyType::Aml, "100", None);
        aml.risk_levels = vec![RiskLevel::High, RiskLevel::Medium];
        let policies = [aml];
        let high = merchant(RiskLevel::High);
        let low = merchant(RiskLevel::Low);
        let flags = policy_flags(d("150"), "USD", Some(&high), &policies);
        assert!(flags.contains(PolicyFlag::AmlPending));
        assert!(flags.contains(PolicyFlag::HighRiskMerchant));
        assert!(policy_flags(d("150"), "USD", Some(&low), &policies).is_empty());
        assert!(policy_flags(d("150"), "USD", None, &policies).is_empty());
        let mut risk_rule = policy(PolicyType::MerchantRisk, "0", None);
        risk_rule.risk_levels = vec![RiskLevel::Medium];
        let medium = merchant(RiskLevel::Medium);
        assert!(
            policy_flags(d("1"), "USD", Some(&medium), &[risk_rule])
                .contains(PolicyFlag::HighRiskMerchant)
        );
    }

    #[test]
    fn score_and_flags_combine_into_one_assessment() {
        let none = PolicyFlags::NONE;
        let kyc: PolicyFlags = [PolicyFlag::KycRequired].into_iter().collect();
        let aml: PolicyFlags = [PolicyFlag::AmlPending].into_iter().collect();
        let aml_high: PolicyFlags = [PolicyFlag::AmlPending, PolicyFlag::HighRiskMerchant]
            .into_iter()
            .collect();
        assert_eq!(flag_compliance(None, none), Assessment::Clear);
        assert_eq!(flag_compliance(Some(d("0.69")), none), Assessment::Clear);
        assert_eq!(flag_compliance(Some(d("0.70")), none), Assessment::Review);
        assert_eq!(flag_compliance(Some(d("0.10")), kyc), Assessment::Review);
        assert_eq!(flag_compliance(Some(d("0.75")), kyc), Assessment::Review);
        assert_eq!(flag_compliance(Some(d("0.75")), aml), Assessment::Escalate);
        assert_eq!(
            flag_compliance(Some(d("0.10")), aml_high),
            Assessment::Escalate
        );
        assert_eq!(flag_compliance(Some(d("0.90")), none), Assessment::Escalate);
    }

    #[test]
    fn flags_round_trip_through_bits_and_names() {
        let all: PolicyFlags = PolicyFlag::ALL.into_iter().collect();
        assert_eq!(PolicyFlags::from_bits(all.bits()), all);
        for f in PolicyFlag::ALL {
            assert_eq!(PolicyFlag::parse(f.as_str()), Some(f));
        }
    }
}
