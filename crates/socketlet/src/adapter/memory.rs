//! The in-memory adapter: single-node mode.

use super::Adapter;

/// Everything happens on this node: the namespace's own index is the whole truth. It keeps
/// every default of [`Adapter`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryAdapter;

impl Adapter for MemoryAdapter {}
