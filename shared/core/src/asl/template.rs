//! Payload templates: `Parameters`, `ItemSelector` and `ResultSelector`. A field whose name ends
//! in `.$` takes its value from a path or an intrinsic call; every other field is literal.

use serde_json::{Map, Value};

use super::env::Env;
use super::errors::Failure;
use super::intrinsic::{Intrinsic, looks_like_intrinsic};
use super::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// No `.$` anywhere inside: copied as is.
    Literal(Value),
    Object(Vec<(String, Field)>),
    Array(Vec<Template>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Static(Template),
    Path { key: String, path: Path },
    Intrinsic { key: String, call: Intrinsic },
}

impl Template {
    /// Compiles a template; the error names the offending field (`a.b.c.$`) and the reason.
    pub fn compile(value: &Value) -> Result<Template, String> {
        compile_at(value, "")
    }

    pub fn eval(&self, env: &Env<'_>) -> Result<Value, Failure> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Array(items) => items
                .iter()
                .map(|t| t.eval(env))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Object(fields) => {
                let mut out = Map::new();
                for (name, field) in fields {
                    out.insert(name.clone(), field.eval(env)?);
                }
                Ok(Value::Object(out))
            }
        }
    }

    /// Whether a path or intrinsic anywhere in the template reads `$$.Task.Token`
    /// (`.waitForTaskToken` tasks must pass the token on).
    pub fn references_task_token(&self) -> bool {
        match self {
            Template::Literal(_) => false,
            Template::Array(items) => items.iter().any(Template::references_task_token),
            Template::Object(fields) => fields.iter().any(|(_, f)| match f {
                Field::Static(t) => t.references_task_token(),
                Field::Path { path, .. } => path.text().starts_with("$$.Task.Token"),
                Field::Intrinsic { call, .. } => call.references_task_token(),
            }),
        }
    }
}

impl Field {
    fn eval(&self, env: &Env<'_>) -> Result<Value, Failure> {
        match self {
            Field::Static(t) => t.eval(env),
            Field::Path { key, path } => env.select(path).map(|v| v.into_owned()).ok_or_else(|| {
                Failure::runtime(format!(
                    "the JSONPath '{path}' specified for the field '{key}' could not be found in the input"
                ))
            }),
            Field::Intrinsic { call, .. } => call.eval(env),
        }
    }
}

fn has_dynamic(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
        Value::Array(items) => items.iter().any(has_dynamic),
        _ => false,
    }
}

fn compile_at(value: &Value, at: &str) -> Result<Template, String> {
    if !has_dynamic(value) {
        return Ok(Template::Literal(value.clone()));
    }
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| compile_at(v, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Template::Array),
        Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            for (key, v) in map {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let field = match key.strip_suffix(".$") {
                    Some(name) => {
                        let name = name.to_owned();
                        let text = v.as_str().ok_or_else(|| {
                            format!("field '{here}' must be a string holding a path or an intrinsic function")
                        })?;
                        if map.contains_key(&name) {
                            return Err(format!(
                                "fields '{here}' and '{name}' would both produce '{name}'"
                            ));
                        }
                        let field =
                            dynamic_field(key, text).map_err(|e| format!("field '{here}': {e}"))?;
                        fields.push((name, field));
                        continue;
                    }
                    None => Field::Static(compile_at(v, &here)?),
                };
                fields.push((key.clone(), field));
            }
            Ok(Template::Object(fields))
        }
        // has_dynamic() is false for scalars, handled above.
        other => Ok(Template::Literal(other.clone())),
    }
}

fn dynamic_field(key: &str, text: &str) -> Result<Field, String> {
    if looks_like_intrinsic(text) {
        return Intrinsic::parse(text).map(|call| Field::Intrinsic {
            key: key.to_owned(),
            call,
        });
    }
    Path::parse(text)
        .map(|path| Field::Path {
            key: key.to_owned(),
            path,
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::entropy::SeededEntropy;
    use serde_json::json;

    fn eval(template: Value, input: Value) -> Result<Value, Failure> {
        let entropy = SeededEntropy::new(1);
        let ctx = json!({"Task": {"Token": "tok"}, "Map": {"Item": {"Index": 3}}});
        Template::compile(&template)
            .expect("template compiles")
            .eval(&Env::new(&input, &ctx, &entropy))
    }

    #[test]
    fn dollar_fields_nested_objects_and_arrays() {
        let out = eval(
            json!({
                "static": {"a": 1},
                "name.$": "$.who",
                "nested": {"idx.$": "$$.Map.Item.Index", "list": [{"v.$": "$.n"}, 2]},
                "fmt.$": "States.Format('hi {}', $.who)"
            }),
            json!({"who": "Bo", "n": 7}),
        )
        .expect("evaluates");
        assert_eq!(
            out,
            json!({"static": {"a": 1}, "name": "Bo", "nested": {"idx": 3, "list": [{"v": 7}, 2]}, "fmt": "hi Bo"})
        );
    }

    #[test]
    fn errors() {
        let missing = eval(json!({"x.$": "$.nope"}), json!({})).expect_err("missing path");
        assert_eq!(missing.error, "States.Runtime");
        assert!(missing.cause.contains("x.$"));
        assert!(
            Template::compile(&json!({"a": {"b.$": 3}}))
                .expect_err("non-string")
                .contains("a.b.$")
        );
        assert!(Template::compile(&json!({"b.$": "nope"})).is_err());
        assert!(Template::compile(&json!({"b.$": "$.x", "b": 1})).is_err());
        assert!(
            Template::compile(&json!({"t.$": "$$.Task.Token"}))
                .expect("ok")
                .references_task_token()
        );
        assert!(
            !Template::compile(&json!({"t": "$$.Task.Token"}))
                .expect("ok")
                .references_task_token()
        );
    }
}
