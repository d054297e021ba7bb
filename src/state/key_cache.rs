//! The teams of API keys seen in the last second, so that a client sending many requests
//! costs one key lookup per second instead of one per request (a database read on a blocking
//! thread, before the request's own work). Keys are revoked by the `keys revoke` command, in
//! another process: a revoked key is refused within `KEY_CACHE_TTL`. Only valid keys are
//! remembered; a wrong key is looked up every time (and rate limited by address).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::keys::Team;

/// How long a key's team is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Keys remembered at most; past it, expired ones go, then all.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    /// SHA-256 (hex) of the key → its team, and when it was looked up.
    teams: Mutex<HashMap<String, (Team, Instant)>>,
}

impl KeyCache {
    /// The team of the key with this digest, if looked up less than `KEY_CACHE_TTL` ago.
    pub fn get(&self, digest: &str) -> Option<Team> {
        let teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams.get(digest).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(team, _)| team.clone())
    }

    pub fn put(&self, digest: String, team: Team) {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        if teams.len() >= MAX_KEYS {
            teams.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            if teams.len() >= MAX_KEYS {
                teams.clear();
            }
        }
        teams.insert(digest, (team, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_team_for_the_ttl_only() {
        let cache = KeyCache::default();
        let team = Team { id: "t".into(), name: "n".into() };
        assert_eq!(cache.get("d"), None);
        cache.put("d".into(), team.clone());
        assert_eq!(cache.get("d"), Some(team.clone()));
        // an entry looked up longer ago than the TTL is not trusted
        cache.teams.lock().unwrap().insert("old".into(), (team, Instant::now() - KEY_CACHE_TTL));
        assert_eq!(cache.get("old"), None);
    }

    #[test]
    fn stays_bounded() {
        let cache = KeyCache::default();
        for i in 0..MAX_KEYS + 5 {
            cache.put(format!("{i}"), Team { id: "t".into(), name: "n".into() });
        }
        assert!(cache.teams.lock().unwrap().len() <= MAX_KEYS);
    }
}
