//! The emulator crate's integration tests, one binary: the control routes and
//! plugins over plain HTTP, CloudWatch over rpcv2 CBOR, Aurora global
//! database switchovers over RDS's Query protocol, and S3 faults by operation.

mod cloudwatch_alarms;
mod rds_global;
mod routes;
mod s3;
