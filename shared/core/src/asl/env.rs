//! What a path or an intrinsic is evaluated against: the state's input (`$`), the context object
//! (`$$`) and a source of randomness.

use std::borrow::Cow;

use serde_json::Value;

use super::entropy::Entropy;
use super::path::{Path, Root};

/// Resolves `$$…` paths. The executor implements it lazily so that a Map over 10,000 items does
/// not copy the execution input into a context object for every item.
pub trait ContextSource {
    fn select_context(&self, path: &Path) -> Option<Cow<'_, Value>>;
}

impl ContextSource for Value {
    fn select_context(&self, path: &Path) -> Option<Cow<'_, Value>> {
        path.select(self)
    }
}

#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub input: &'a Value,
    pub context: &'a dyn ContextSource,
    pub entropy: &'a dyn Entropy,
}

impl<'a> Env<'a> {
    pub fn new(input: &'a Value, context: &'a dyn ContextSource, entropy: &'a dyn Entropy) -> Self {
        Env {
            input,
            context,
            entropy,
        }
    }

    /// The same environment over another input (`$` changes, `$$` does not).
    pub fn with_input(&self, input: &'a Value) -> Env<'a> {
        Env { input, ..*self }
    }

    pub fn select(&self, path: &Path) -> Option<Cow<'a, Value>> {
        match path.root() {
            Root::Input => path.select(self.input),
            Root::Context => self.context.select_context(path),
        }
    }
}
