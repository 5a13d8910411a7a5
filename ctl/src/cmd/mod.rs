//! One module per labctl command group; each takes parsed arguments and a dialled client.

pub mod apply;
pub mod backups;
pub mod docs;
pub mod inventory;
pub mod jobs;
pub mod nodes;
pub mod schedule;
pub mod secrets;
pub mod status;
pub mod token;
pub mod topology;
pub mod user;
pub mod watch;
