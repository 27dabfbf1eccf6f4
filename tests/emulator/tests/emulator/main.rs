//! The emulator crate's integration tests, one binary: the control routes and
//! plugins over plain HTTP, CloudWatch over rpcv2 CBOR, Aurora global
//! database switchovers over RDS's Query protocol, S3 faults by operation, and
//! what failovers rely on (DNS answers, region outages, capacity shortages).

mod cloudwatch_alarms;
mod failover;
mod rds_global;
mod routes;
mod s3;
