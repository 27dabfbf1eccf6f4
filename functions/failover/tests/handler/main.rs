//! The failover function's handler, called directly with the events Lambda
//! would deliver, over two DM regions in the emulator (the fence a DynamoDB MRSC
//! table, the database an Aurora global database whose writer the regional
//! stores follow), on SQLite and on MariaDB: every `events/` sample of the
//! function (`samples`), and malformed events, which are refused with a reason
//! and change nothing (`malformed`). The workflow itself is tested in
//! `shared/tests/integration/failover.rs`.

mod malformed;
mod samples;
mod support;
