//! Typed per-socket state (what python-socketio calls the session).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;

type AnyMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

/// A map from type to value: one value per type, set by middlewares or handlers, read anywhere.
/// Empty until first used (no allocation for sockets that keep no state).
#[derive(Default)]
pub struct Extensions {
    map: Mutex<Option<AnyMap>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().as_ref().map_or(0, HashMap::len);
        write!(f, "Extensions({n} values)")
    }
}

impl Extensions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<AnyMap>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock()
            .get_or_insert_with(HashMap::new)
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

    /// Runs `f` on the value of type `T` (mutable), if there is one.
    pub fn with<T: Send + Sync + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.lock();
        let v = guard
            .as_mut()?
            .get_mut(&TypeId::of::<T>())?
            .downcast_mut::<T>()?;
        Some(f(v))
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
        assert_eq!(
            e.with(|s: &mut String| {
                s.push('y');
                s.len()
            }),
            Some(2)
        );
        assert_eq!(e.remove::<String>().as_deref(), Some("xy"));
        assert_eq!(e.get::<String>(), None);
    }
}
