//! The Amazon States Language (JSONPath query language), as pure functions: the definition model
//! with strict load-time validation, paths, payload templates, intrinsic functions, Choice rules,
//! Retry/Catch policy and a step engine that decides what each state does next. The executor that
//! performs tasks, waits and persists history lives in `payops-local`; it drives `engine`.

pub mod choice;
pub mod context;
pub mod definition;
pub mod engine;
pub mod entropy;
pub mod env;
pub mod errors;
pub mod events;
pub mod intrinsic;
pub mod number;
pub mod path;
pub mod reader;
pub mod resource;
pub mod retry;
pub mod template;

pub use context::{ExecutionInfo, StateContext};
pub use definition::{Block, DefinitionError, State, StateKind, StateMachine, StateType};
pub use engine::{Attempt, Step};
pub use entropy::{Entropy, SeededEntropy};
pub use env::{ContextSource, Env};
pub use errors::{Failure, error_matches};
pub use events::{EventKind, EventSink};
pub use path::{Path, PathError};

#[cfg(test)]
mod engine_tests;
