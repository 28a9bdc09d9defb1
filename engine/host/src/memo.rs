//! Answers remembered per plugin digest and inputs. A plugin has no clock,
//! no randomness and no I/O (see `sandbox.rs`), so the same component given
//! the same inputs gives the same answer: the host need not ask twice.
//! Only answers are remembered, never faults (a time-out depends on the
//! machine's load).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At most this many answers per plugin; when full, the memo starts over.
const CAPACITY: usize = 4096;

/// A memo of one plugin's answers of type `V`, keyed by the call's name
/// and its inputs in full (never a lossy hash: two inputs never share an
/// answer). Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct Memo<V> {
    answers: Arc<Mutex<HashMap<Vec<u8>, V>>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self {
            answers: Arc::default(),
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The key of `call` with `inputs`: the call's name, then the inputs'
    /// JSON form.
    pub(crate) fn key(call: &str, inputs: &impl serde::Serialize) -> Option<Vec<u8>> {
        let mut key = call.as_bytes().to_vec();
        key.push(0);
        serde_json::to_writer(&mut key, inputs).ok()?;
        Some(key)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<V> {
        self.answers.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn put(&self, key: Vec<u8>, answer: V) {
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
        memo.put(a.clone(), 7);
        assert_eq!(memo.get(&a), Some(7));
        assert_eq!(memo.get(&b), None);
        for i in 0..CAPACITY + 1 {
            memo.put(i.to_le_bytes().to_vec(), 0);
        }
        assert!(memo.answers.lock().unwrap().len() <= CAPACITY);
    }
}
