//! The tower layer. See the [crate docs](crate) for an example.

mod body;
mod future;
mod service;

pub use body::{RbacBody, ToolListStream};
pub use future::ResponseFuture;
pub use service::{CelPolicyLayer, CelPolicyService};
