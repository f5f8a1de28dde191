//! One module per task, each with one entry point `run`. Tasks use the context, the engine
//! builders, the execution layer, the lockfile parsers and project policy; never each other's
//! internals (`ci` calls other tasks' entry points only).

pub mod base_image;
pub mod bench;
pub mod ci;
pub mod clean;
pub mod doctor;
pub mod help_check;
pub mod image;
pub mod lock;
pub mod multinode;
pub mod pins;
pub mod pull;
pub mod push;
pub mod pytest;
pub mod run;
pub mod sbom;
pub mod shell;
pub mod smoke;
