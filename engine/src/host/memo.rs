//! Answers remembered per plugin digest and inputs. A plugin has no clock,
//! no randomness and no I/O (see `sandbox.rs`), so the same component given
//! the same inputs gives the same answer: the host need not ask twice.
//! Only answers are remembered, never faults (a time-out depends on the
//! machine's load).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// At most this many answers per plugin; when full, the memo starts over.
const CAPACITY: usize = 4096;

/// A memo of one plugin's answers of type `V`, keyed by a hash of the
/// call's name and inputs. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct Memo<V> {
    answers: Arc<Mutex<HashMap<u64, V>>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self {
            answers: Arc::default(),
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The key of `call` with `inputs`: a 64-bit hash of their JSON form.
    pub fn key(call: &str, inputs: &impl serde::Serialize) -> Option<u64> {
        let json = serde_json::to_vec(inputs).ok()?;
        let mut h = DefaultHasher::new();
        call.hash(&mut h);
        json.hash(&mut h);
        Some(h.finish())
    }

    pub fn get(&self, key: u64) -> Option<V> {
        self.answers.lock().ok()?.get(&key).cloned()
    }

    pub fn put(&self, key: u64, answer: V) {
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() >= CAPACITY {
                answers.clear();
            }
            answers.insert(key, answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_call_and_inputs_and_stays_bounded() {
        let memo = Memo::<u32>::default();
        let a = Memo::<u32>::key("route", &(1, "x")).unwrap();
        let b = Memo::<u32>::key("route", &(2, "x")).unwrap();
        let c = Memo::<u32>::key("other", &(1, "x")).unwrap();
        assert!(a != b && a != c);
        memo.put(a, 7);
        assert_eq!(memo.get(a), Some(7));
        assert_eq!(memo.get(b), None);
        for i in 0..CAPACITY as u64 + 1 {
            memo.put(i + 1000, 0);
        }
        assert!(memo.answers.lock().unwrap().len() <= CAPACITY);
    }
}
