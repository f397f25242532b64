//! payops-local
