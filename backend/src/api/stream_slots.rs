//! A cap on open live streams: each is held by a signed-in user or a share link, at most
//! [`PER_HOLDER`] at a time, so that a few link holders cannot tie up the server's memory and
//! connections. A stream gives its slot back when it ends or its client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ApiError;

/// Open streams one holder may have.
pub(super) const PER_HOLDER: usize = 16;

/// Who holds a stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Holder {
    /// A signed-in user, by id.
    User(i64),
    /// A share link, by its token.
    Link(String),
}

/// The open streams per holder.
#[derive(Debug, Default)]
pub(super) struct StreamSlots(Mutex<HashMap<Holder, usize>>);

/// One open stream's place; given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<StreamSlots>,
    holder: Holder,
}

impl StreamSlots {
    /// A slot for `holder`, or a 429 when it already has [`PER_HOLDER`] streams open.
    pub(super) fn take(self: &Arc<Self>, holder: Holder) -> Result<Slot, ApiError> {
        let mut open = self.0.lock().unwrap();
        let count = open.entry(holder.clone()).or_default();
        if *count >= PER_HOLDER {
            return Err(ApiError::TooManyRequests(format!(
                "at most {PER_HOLDER} live streams may be open at once per user or share \
                 link; close some pages"
            )));
        }
        *count += 1;
        Ok(Slot {
            slots: self.clone(),
            holder,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap();
        if let Some(count) = open.get_mut(&self.holder) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_holder_and_given_back() {
        let slots = Arc::new(StreamSlots::default());
        let ada = Holder::User(1);
        let held: Vec<Slot> = (0..PER_HOLDER)
            .map(|_| slots.take(ada.clone()).unwrap())
            .collect();
        assert!(matches!(
            slots.take(ada.clone()),
            Err(ApiError::TooManyRequests(_))
        ));
        assert!(slots.take(Holder::Link("t".into())).is_ok(), "per holder");
        drop(held);
        assert!(
            slots.0.lock().unwrap().is_empty(),
            "no entry is left behind"
        );
    }
}
