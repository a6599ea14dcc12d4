//! One module per command group.

pub mod backup;
pub mod blueprint;
pub mod db;
pub mod doctor;
pub mod domain;
pub mod store;
pub mod user;
pub mod webhook;
