//! References a Pod makes to itself, to the node and to the manifest's ConfigMaps and Secrets,
//! resolved when the Pod is planned (before anything is created), as the kubelet does when it
//! makes a container's environment (`makeEnvironmentVariables`) and sets up `configMap`/`secret`
//! volumes. A missing object or key is an error naming the field, unless it is `optional`.

mod env;
mod node;
mod volume;

pub use env::container_env;
pub use node::Node;
pub use volume::{volume_contents, Contents};

use crate::manifest::{Manifest, Pod};

/// What references are resolved against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub pod: &'a Pod,
    /// The Pod's UID as it will run (`metadata.uid` or a fresh one).
    pub uid: &'a str,
    pub manifest: &'a Manifest,
    pub node: &'a Node,
}

impl Context<'_> {
    fn namespace(&self) -> &str {
        self.pod.namespace()
    }
}

/// `<path>: Not found: "<name>": <kubelet's words>`.
fn not_found(path: &str, name: &str, detail: &str) -> String {
    format!("{path}: Not found: {name:?}: {detail}")
}

#[cfg(test)]
mod tests;
