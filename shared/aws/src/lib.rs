//! payops-aws
