//! The generated code of the control protocol (`proto/control.proto`, package
//! `clusterharness.control.v1`), compiled by this crate's `build.rs`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]
tonic::include_proto!("clusterharness.control.v1");
