//! The events the in-memory cluster has published, per Canary. An event
//! is kept as its type, reason and message, each text in a box of its own
//! length: a Canary publishes a handful per rollout, and at 10,000
//! Canaries a `(key, Event)` list with a doubling buffer was 15 MiB.

use std::collections::{BTreeMap, BTreeSet};

use super::Key;
use crate::cluster::{Event, EventType};

/// One published event.
struct Published {
    event_type: EventType,
    reason: Box<str>,
    message: Box<str>,
}

/// Every Canary's events, oldest first, and the names of the named ones.
#[derive(Default)]
pub(super) struct EventLog {
    by_canary: BTreeMap<Key, Vec<Published>>,
    /// "namespace/name" of each named event published
    /// (see [`Event::name`]).
    names: BTreeSet<String>,
}

impl EventLog {
    /// Records `event` about the Canary `k`, unless it is named and an
    /// event of that name is already there. Returns whether it recorded.
    pub(super) fn publish(&mut self, k: &Key, event: &Event) -> bool {
        if let Some(name) = &event.name
            && !self.names.insert(format!("{}/{name}", k.0))
        {
            return false;
        }
        let published = Published {
            event_type: event.event_type,
            reason: event.reason.as_str().into(),
            message: event.message.as_str().into(),
        };
        match self.by_canary.get_mut(k) {
            Some(list) => list.push(published),
            None => {
                self.by_canary.insert(k.clone(), vec![published]);
            }
        }
        true
    }

    /// The events about the Canary `k`, oldest first (without names).
    pub(super) fn of(&self, k: &Key) -> Vec<Event> {
        let list = self.by_canary.get(k).map(Vec::as_slice).unwrap_or_default();
        list.iter()
            .map(|p| Event {
                event_type: p.event_type,
                reason: p.reason.to_string(),
                message: p.message.to_string(),
                name: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("test".into(), name.into())
    }

    #[test]
    fn events_are_kept_per_canary_in_order_and_a_named_one_once_per_namespace() {
        let mut log = EventLog::default();
        let mut named = Event::warning("Halt advancement");
        named.name = Some("podinfo.halt".into());
        assert!(log.publish(&key("podinfo"), &Event::normal("first")));
        assert!(log.publish(&key("other"), &Event::normal("elsewhere")));
        assert!(log.publish(&key("podinfo"), &named));
        assert!(
            !log.publish(&key("podinfo"), &named),
            "a name is published once"
        );
        let messages: Vec<String> = log
            .of(&key("podinfo"))
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(messages, ["first", "Halt advancement"]);
        let last = log.of(&key("podinfo")).pop().expect("an event");
        assert_eq!((last.event_type, last.name), (EventType::Warning, None));
        assert!(log.of(&key("none")).is_empty());
    }
}
