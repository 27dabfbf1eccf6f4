//! The emulator crate's integration tests, one binary: the control routes and
//! plugins over plain HTTP, and CloudWatch over rpcv2 CBOR.

mod cloudwatch_alarms;
mod routes;
