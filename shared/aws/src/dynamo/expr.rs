//! Building DynamoDB expressions from the port's conditions, update actions and sort-key
//! ranges. Every attribute name goes through a `#nN` placeholder (so reserved words such as
//! `status` or `date` are safe) and every value through a `:vN` placeholder.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use payops_app::ports::table::PK;
use payops_app::ports::{Condition, SortKeyRange, UpdateAction, Value};

use super::value::{AttrMap, number_text, to_attr};

/// `ExpressionAttributeNames`: placeholder → attribute name.
pub(crate) type NameMap = HashMap<String, String>;

/// The `#name` and `:value` placeholders of one request. DynamoDB rejects unused
/// placeholders, so they are only created when an expression uses them.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    names: HashMap<String, String>,
    placeholder_of: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    /// The placeholder of an attribute name (the same one each time the name is used).
    pub(crate) fn name(&mut self, attr: &str) -> String {
        if let Some(p) = self.placeholder_of.get(attr) {
            return p.clone();
        }
        let p = format!("#n{}", self.names.len());
        self.names.insert(p.clone(), attr.to_owned());
        self.placeholder_of.insert(attr.to_owned(), p.clone());
        p
    }

    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), value);
        p
    }

    /// The maps for `ExpressionAttributeNames` / `ExpressionAttributeValues`, `None` when
    /// empty (DynamoDB rejects an empty map).
    pub(crate) fn into_maps(self) -> (Option<NameMap>, Option<AttrMap>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

/// A `ConditionExpression`. Comparisons with a missing attribute are false, except `<>`,
/// which DynamoDB evaluates to true when the attribute is missing (and so does the port).
pub(crate) fn condition(c: &Condition, p: &mut Placeholders) -> String {
    match c {
        Condition::ItemExists => format!("attribute_exists({})", p.name(PK)),
        Condition::ItemNotExists => format!("attribute_not_exists({})", p.name(PK)),
        Condition::AttributeExists(a) => format!("attribute_exists({})", p.name(a)),
        Condition::AttributeNotExists(a) => format!("attribute_not_exists({})", p.name(a)),
        Condition::Eq(a, v) => compare(a, "=", v, p),
        Condition::Ne(a, v) => compare(a, "<>", v, p),
        Condition::Lt(a, v) => compare(a, "<", v, p),
        Condition::Le(a, v) => compare(a, "<=", v, p),
        Condition::Gt(a, v) => compare(a, ">", v, p),
        Condition::Ge(a, v) => compare(a, ">=", v, p),
        Condition::And(cs) => junction(cs, "AND", p),
        Condition::Or(cs) => junction(cs, "OR", p),
        Condition::Not(inner) => format!("(NOT {})", condition(inner, p)),
    }
}

fn compare(attr: &str, op: &str, v: &Value, p: &mut Placeholders) -> String {
    let n = p.name(attr);
    let v = p.value(to_attr(v));
    format!("{n} {op} {v}")
}

/// `(a AND b …)`. DynamoDB has no `true`/`false` literals, so the empty conjunction (true)
/// and the empty disjunction (false) are written as tautology / contradiction on `pk`.
fn junction(cs: &[Condition], op: &str, p: &mut Placeholders) -> String {
    match cs {
        [] => {
            let pk = p.name(PK);
            if op == "AND" {
                format!("(attribute_exists({pk}) OR attribute_not_exists({pk}))")
            } else {
                format!("(attribute_exists({pk}) AND attribute_not_exists({pk}))")
            }
        }
        [only] => condition(only, p),
        _ => {
            let parts: Vec<String> = cs.iter().map(|c| condition(c, p)).collect();
            format!("({})", parts.join(&format!(" {op} ")))
        }
    }
}

/// The attribute that an update without actions removes. It is never written, so removing it
/// changes nothing, but the expression still creates a missing item as UpdateItem does.
/// (An UpdateItem without an expression does the same in DynamoDB, but TransactWriteItems
/// requires one and moto fails with an internal error without one.)
pub(crate) const NO_OP_ATTR: &str = "payops:no-op";

/// An `UpdateExpression`; with no actions, one that only creates a missing item.
pub(crate) fn update(actions: &[UpdateAction], p: &mut Placeholders) -> String {
    if actions.is_empty() {
        return format!("REMOVE {}", p.name(NO_OP_ATTR));
    }
    let mut set = Vec::new();
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for action in actions {
        match action {
            UpdateAction::Set(a, v) => {
                let n = p.name(a);
                set.push(format!("{n} = {}", p.value(to_attr(v))));
            }
            UpdateAction::SetIfNotExists(a, v) => {
                let n = p.name(a);
                set.push(format!("{n} = if_not_exists({n}, {})", p.value(to_attr(v))));
            }
            UpdateAction::Add(a, delta) => {
                let n = p.name(a);
                let v = p.value(AttributeValue::N(number_text(*delta)));
                add.push(format!("{n} {v}"));
            }
            UpdateAction::Remove(a) => remove.push(p.name(a)),
        }
    }
    [("SET", set), ("ADD", add), ("REMOVE", remove)]
        .into_iter()
        .filter(|(_, parts)| !parts.is_empty())
        .map(|(keyword, parts)| format!("{keyword} {}", parts.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `KeyConditionExpression` on the partition attribute `pk_attr` and sort attribute
/// `sk_attr` (the table's `pk`/`sk` or an index's).
pub(crate) fn key_condition(
    pk_attr: &str,
    sk_attr: &str,
    partition: &str,
    range: &SortKeyRange,
    p: &mut Placeholders,
) -> String {
    let pk = p.name(pk_attr);
    let pv = p.value(AttributeValue::S(partition.to_owned()));
    let sort = |op: &str, bound: &str, p: &mut Placeholders| {
        let sk = p.name(sk_attr);
        let v = p.value(AttributeValue::S(bound.to_owned()));
        format!(" AND {sk} {op} {v}")
    };
    let sort_part = match range {
        SortKeyRange::All => String::new(),
        SortKeyRange::Eq(b) => sort("=", b, p),
        SortKeyRange::Lt(b) => sort("<", b, p),
        SortKeyRange::Le(b) => sort("<=", b, p),
        SortKeyRange::Gt(b) => sort(">", b, p),
        SortKeyRange::Ge(b) => sort(">=", b, p),
        SortKeyRange::BeginsWith(prefix) => {
            let sk = p.name(sk_attr);
            let v = p.value(AttributeValue::S(prefix.clone()));
            format!(" AND begins_with({sk}, {v})")
        }
        SortKeyRange::Between(low, high) => {
            let sk = p.name(sk_attr);
            let lv = p.value(AttributeValue::S(low.clone()));
            let hv = p.value(AttributeValue::S(high.clone()));
            format!(" AND {sk} BETWEEN {lv} AND {hv}")
        }
    };
    format!("{pk} = {pv}{sort_part}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn names_are_reused_and_values_are_not() {
        let mut p = Placeholders::default();
        let c = Condition::And(vec![
            Condition::ge("status", "A"),
            Condition::le("status", "Z"),
        ]);
        assert_eq!(condition(&c, &mut p), "(#n0 >= :v0 AND #n0 <= :v1)");
        let (names, values) = p.into_maps();
        assert_eq!(names.expect("used").len(), 1);
        assert_eq!(values.expect("used").len(), 2);
    }

    #[test]
    fn ne_is_dynamodb_not_equal() {
        let mut p = Placeholders::default();
        assert_eq!(
            condition(&Condition::ne("state", "PAID"), &mut p),
            "#n0 <> :v0"
        );
    }

    #[test]
    fn item_conditions_test_the_partition_key() {
        let mut p = Placeholders::default();
        let c = Condition::Or(vec![
            Condition::ItemNotExists,
            Condition::Not(Box::new(Condition::exists("x"))),
        ]);
        assert_eq!(
            condition(&c, &mut p),
            "(attribute_not_exists(#n0) OR (NOT attribute_exists(#n1)))"
        );
        let (names, values) = p.into_maps();
        let names = names.expect("used");
        assert_eq!(names["#n0"], PK);
        assert!(values.is_none(), "no values were used");
    }

    #[test]
    fn empty_junctions_are_true_and_false() {
        let mut p = Placeholders::default();
        assert_eq!(
            condition(&Condition::And(vec![]), &mut p),
            "(attribute_exists(#n0) OR attribute_not_exists(#n0))"
        );
        assert_eq!(
            condition(&Condition::Or(vec![]), &mut p),
            "(attribute_exists(#n0) AND attribute_not_exists(#n0))"
        );
    }

    #[test]
    fn update_clauses_are_grouped_by_keyword() {
        let mut p = Placeholders::default();
        let actions = vec![
            UpdateAction::add("count", 1),
            UpdateAction::set("state", "PAID"),
            UpdateAction::remove("lock"),
            UpdateAction::set_if_not_exists("created", "2024-01-01"),
            UpdateAction::Add("total".into(), Decimal::new(1050, 2)),
        ];
        assert_eq!(
            update(&actions, &mut p),
            "SET #n1 = :v1, #n3 = if_not_exists(#n3, :v2) ADD #n0 :v0, #n4 :v3 REMOVE #n2"
        );
        let (_, values) = p.into_maps();
        assert_eq!(
            values.expect("used")[":v3"],
            AttributeValue::N("10.5".into())
        );
        let mut p = Placeholders::default();
        assert_eq!(update(&[], &mut p), "REMOVE #n0");
        assert_eq!(p.into_maps().0.expect("used")["#n0"], NO_OP_ATTR);
    }

    #[test]
    fn every_sort_key_range_has_a_key_condition() {
        let cases = [
            (SortKeyRange::All, "#n0 = :v0"),
            (SortKeyRange::Eq("a".into()), "#n0 = :v0 AND #n1 = :v1"),
            (SortKeyRange::Lt("a".into()), "#n0 = :v0 AND #n1 < :v1"),
            (SortKeyRange::Le("a".into()), "#n0 = :v0 AND #n1 <= :v1"),
            (SortKeyRange::Gt("a".into()), "#n0 = :v0 AND #n1 > :v1"),
            (SortKeyRange::Ge("a".into()), "#n0 = :v0 AND #n1 >= :v1"),
            (
                SortKeyRange::BeginsWith("a".into()),
                "#n0 = :v0 AND begins_with(#n1, :v1)",
            ),
            (
                SortKeyRange::Between("a".into(), "b".into()),
                "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2",
            ),
        ];
        for (range, expected) in cases {
            let mut p = Placeholders::default();
            assert_eq!(
                key_condition("gsi1_pk", "gsi1_sk", "P", &range, &mut p),
                expected
            );
        }
    }
}
