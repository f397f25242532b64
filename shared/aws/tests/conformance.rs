//! The shared adapter conformance suite (`payops_app::conformance`) against moto.

mod support;

payops_app::conformance_tests!(support::MotoHarness::new());
