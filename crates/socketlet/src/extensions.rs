//! Typed per-socket state (what python-socketio calls the session).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;

type AnyMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

/// A map from type to value: one value per type, set by middlewares or handlers, read anywhere.
/// Empty until first used (no allocation for sockets that keep no state).
///
/// Values are read by clone ([`Extensions::get`]): no code of the application runs while the
/// map is locked. State that handlers change in place goes in a type that synchronises
/// itself, such as `Arc<Mutex<T>>` or an atomic:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let ext = socketlet::Extensions::default();
/// ext.insert(Arc::new(Mutex::new(Vec::<String>::new())));
/// if let Some(log) = ext.get::<Arc<Mutex<Vec<String>>>>() {
///     log.lock().unwrap().push("seen".into());
/// }
/// ```
#[derive(Default)]
pub struct Extensions {
    /// Boxed: 16 bytes a socket (with the lock) until first used, rather than a map's 56.
    map: Mutex<Option<Box<AnyMap>>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().as_ref().map_or(0, |m| m.len());
        write!(f, "Extensions({n} values)")
    }
}

impl Extensions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<AnyMap>>> {
        socketlet_engine::sync::lock(&self.map)
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock()
            .get_or_insert_with(Box::default)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// A clone of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock()
            .as_ref()?
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
            .cloned()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<T> {
        self.lock()
            .as_mut()?
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let e = Extensions::default();
        assert_eq!(e.get::<u32>(), None);
        assert_eq!(e.insert(7u32), None);
        assert_eq!(e.insert(String::from("x")), None);
        assert_eq!(e.insert(8u32), Some(7));
        assert_eq!(e.get::<u32>(), Some(8));
        assert_eq!(e.remove::<String>().as_deref(), Some("x"));
        assert_eq!(e.get::<String>(), None);
    }
}
