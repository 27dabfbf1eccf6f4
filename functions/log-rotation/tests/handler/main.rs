//! The log-rotation function against the emulator: the rotation workflow step by
//! step (`rotation`), and the handler with the events Lambda delivers, on both
//! databases (`schedule`).

mod rotation;
mod schedule;
mod support;
