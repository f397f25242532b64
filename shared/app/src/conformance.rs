//! Adapter conformance suite (see issue 2).
