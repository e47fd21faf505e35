//! Failed sign-ins, counted per client address and user name, and per address: password
//! guessing gets 5 tries in a row for a name (20 for an address over every name), then one
//! more every 12 s (every 3 s). Only failures count, and a success clears its name's count.
//!
//! governor's limiters consume a try on every check, so they cannot count failures alone;
//! this is a token bucket per key that only failures drain. Memory stays bounded: past
//! [`MAX_KEYS`] keys, those whose buckets have refilled (which hold no information) are
//! dropped, then any others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row allowed for one user name from one address, and how fast that refills.
const PER_NAME: Bucket = Bucket::policy(5, Duration::from_secs(12));
/// Failures in a row allowed from one address over every name.
const PER_ADDRESS: Bucket = Bucket::policy(20, Duration::from_secs(3));
/// Keys tracked at most.
const MAX_KEYS: usize = 10_000;

/// The policy, as the 429 states it.
pub const POLICY: &str = "5 failed sign-ins in a row per user name and address (20 per \
                          address), then one more every 12 s (3 s)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Name(IpAddr, [u8; 64], u8),
    Address(IpAddr),
}

impl Key {
    /// The pair key; names longer than 64 bytes are cut (valid names are shorter).
    fn name(address: IpAddr, name: &str) -> Self {
        let mut bytes = [0u8; 64];
        let name = name.as_bytes();
        let n = name.len().min(64);
        bytes[..n].copy_from_slice(&name[..n]);
        Key::Name(address, bytes, n as u8)
    }

    fn policy(&self) -> Bucket {
        match self {
            Key::Name(..) => PER_NAME,
            Key::Address(_) => PER_ADDRESS,
        }
    }
}

/// Tries left (up to `capacity`), refilled by one every `refill`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    capacity: u32,
    refill: Duration,
}

impl Bucket {
    const fn policy(capacity: u32, refill: Duration) -> Self {
        Self { capacity, refill }
    }

    /// Tries left at `now` of a bucket that had `tries` at `then`.
    fn left(self, (tries, then): (f64, Instant), now: Instant) -> f64 {
        let refilled = now.duration_since(then).as_secs_f64() / self.refill.as_secs_f64();
        (tries + refilled).min(f64::from(self.capacity))
    }
}

/// The failures of recent sign-ins.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    /// Per key: tries left, as of when.
    buckets: Mutex<HashMap<Key, (f64, Instant)>>,
}

impl LoginThrottle {
    /// Whether `name` may try to sign in from `address` now; if not, in how long.
    pub fn check(&self, address: IpAddr, name: &str) -> Result<(), Duration> {
        self.check_at(address, name, Instant::now())
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, address: IpAddr, name: &str) {
        self.failed_at(address, name, Instant::now());
    }

    /// Clears the failures of `name` from `address` (its address's count stays).
    pub fn succeeded(&self, address: IpAddr, name: &str) {
        self.buckets
            .lock()
            .unwrap()
            .remove(&Key::name(address, name));
    }

    fn check_at(&self, address: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap();
        let mut wait = Duration::ZERO;
        for key in [Key::name(address, name), Key::Address(address)] {
            let Some(&state) = buckets.get(&key) else {
                continue;
            };
            let policy = key.policy();
            let left = policy.left(state, now);
            if left < 1.0 {
                wait = wait.max(policy.refill.mul_f64(1.0 - left));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    fn failed_at(&self, address: IpAddr, name: &str, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() >= MAX_KEYS {
            prune(&mut buckets, now);
        }
        for key in [Key::name(address, name), Key::Address(address)] {
            let policy = key.policy();
            let full = (f64::from(policy.capacity), now);
            let left = policy.left(*buckets.get(&key).unwrap_or(&full), now);
            buckets.insert(key, ((left - 1.0).max(0.0), now));
        }
    }
}

/// Drops the keys whose buckets are full again, then, if that is not enough, any keys.
fn prune(buckets: &mut HashMap<Key, (f64, Instant)>, now: Instant) {
    buckets.retain(|key, state| {
        let policy = key.policy();
        policy.left(*state, now) < f64::from(policy.capacity)
    });
    let excess = (buckets.len() + 2).saturating_sub(MAX_KEYS);
    let dropped: Vec<Key> = buckets.keys().take(excess).copied().collect();
    for key in dropped {
        buckets.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn five_failures_then_one_every_twelve_seconds() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..5 {
            assert!(throttle.check_at(HOME, "ada", start).is_ok());
            throttle.failed_at(HOME, "ada", start);
        }
        let wait = throttle.check_at(HOME, "ada", start).unwrap_err();
        assert_eq!(wait.as_secs(), 12);
        // Another name, or the same name from elsewhere, is not held back.
        assert!(throttle.check_at(HOME, "bob", start).is_ok());
        assert!(throttle.check_at(AWAY, "ada", start).is_ok());
        let later = start + Duration::from_secs(12);
        assert!(throttle.check_at(HOME, "ada", later).is_ok());
        throttle.failed_at(HOME, "ada", later);
        assert!(throttle.check_at(HOME, "ada", later).is_err());
    }

    #[test]
    fn successes_do_not_count_and_clear_the_name() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            throttle.failed(HOME, "ada");
        }
        throttle.succeeded(HOME, "ada");
        for _ in 0..4 {
            throttle.failed(HOME, "ada");
        }
        assert!(throttle.check(HOME, "ada").is_ok());
    }

    #[test]
    fn one_address_trying_many_names_is_held_back_too() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..20 {
            throttle.failed_at(HOME, &format!("user{i}"), now);
        }
        assert!(throttle.check_at(HOME, "someone-else", now).is_err());
        assert!(throttle.check_at(AWAY, "someone-else", now).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(3 * MAX_KEYS as u32) {
            let address = IpAddr::V4(i.into());
            throttle.failed_at(address, &"x".repeat(1000), now);
        }
        assert!(throttle.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
