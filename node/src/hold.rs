//! The voting hold of a validator that starts without its consensus safety state.
//!
//! A validator whose data directory is new (first start, or wiped) cannot know which votes it
//! signed before: voting again at once could sign a second block for a (view, height) it
//! already voted on. So a new database starts with its votes held (persisted, so a crash while
//! holding keeps holding). The node asks the other validators for their executed height
//! and whether they received anything it signed since they started
//! (a height query). With answers
//! from f+1 of them: if none saw a vote of ours, nothing we might have signed before can be
//! counted by them and we vote at once (every validator of a new network is in this case, even
//! one that starts after the others committed a few blocks). Otherwise anything we signed lies
//! at or below the highest answered height `N` plus the watermark window, so we keep following
//! the chain without signing (the consensus replica is muted) until we have executed that
//! height. A peer that inflates its answer only delays this validator.

use std::collections::BTreeMap;

/// Where a validator's votes stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hold {
    /// It votes.
    #[default]
    Voting,
    /// Its votes are held while it asks the peers how far the chain went.
    Asking,
    /// Its votes are held until it has executed this height.
    Until(u64),
}

/// How [`Hold::Asking`] is stored (`Store::voting_hold`: `None` is voting, `Some(h)` holding
/// until `h`).
const STORED_ASKING: u64 = u64::MAX;

impl Hold {
    /// The hold as stored in the database.
    pub fn from_stored(stored: Option<u64>) -> Hold {
        match stored {
            None => Hold::Voting,
            Some(STORED_ASKING) => Hold::Asking,
            Some(height) => Hold::Until(height),
        }
    }

    /// The hold as the database stores it.
    pub fn to_stored(self) -> Option<u64> {
        match self {
            Hold::Voting => None,
            Hold::Asking => Some(STORED_ASKING),
            Hold::Until(height) => Some(height),
        }
    }

    /// Whether votes are held.
    pub fn holding(self) -> bool {
        self != Hold::Voting
    }

    /// The height to reach before voting, once known.
    pub fn until(self) -> Option<u64> {
        match self {
            Hold::Until(height) => Some(height),
            _ => None,
        }
    }
}

/// How often the height query is broadcast while [`Hold::Asking`].
const QUERY_EVERY_MS: u64 = 500;

/// The hold, driven by the consensus thread.
#[derive(Debug)]
pub struct VotingHold {
    hold: Hold,
    replies: BTreeMap<u32, (u64, bool)>,
    needed: usize,
    window: u64,
    next_query: u64,
}

impl VotingHold {
    /// A hold read from storage for a set of `validators` with the given watermark `window`.
    pub fn new(hold: Hold, validators: usize, window: u64) -> VotingHold {
        VotingHold {
            hold,
            replies: BTreeMap::new(),
            needed: (validators.saturating_sub(1)) / 3 + 1,
            window,
            next_query: 0,
        }
    }

    /// Where the votes stand.
    pub fn hold(&self) -> Hold {
        self.hold
    }

    /// Whether votes are held.
    pub fn holding(&self) -> bool {
        self.hold.holding()
    }

    /// Whether to broadcast a height query now.
    pub fn wants_query(&mut self, now: u64) -> bool {
        if self.hold != Hold::Asking || now < self.next_query {
            return false;
        }
        self.next_query = now + QUERY_EVERY_MS;
        true
    }

    /// A peer's executed height and whether it saw votes of ours. Returns the decided hold (to
    /// persist) once f+1 peers answered.
    pub fn on_reply(&mut self, from: u32, height: u64, seen_votes: bool) -> Option<Hold> {
        if self.hold != Hold::Asking {
            return None;
        }
        self.replies.insert(from, (height, seen_votes));
        if self.replies.len() < self.needed {
            return None;
        }
        let seen = self.replies.values().any(|(_, seen)| *seen);
        let reached = self.replies.values().map(|(h, _)| *h).max().unwrap_or(0);
        self.hold = if seen {
            Hold::Until(reached.saturating_add(self.window))
        } else {
            Hold::Voting
        };
        Some(self.hold)
    }

    /// Our executed height; true when that lifts the hold (to persist).
    pub fn on_executed(&mut self, height: u64) -> bool {
        match self.hold {
            Hold::Until(until) if height >= until => {
                self.hold = Hold::Voting;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_validator_votes_once_f_plus_one_peers_saw_no_vote_of_it() {
        let mut h = VotingHold::new(Hold::Asking, 4, 8);
        assert!(h.wants_query(0));
        assert!(!h.wants_query(100), "rate limited");
        assert!(h.wants_query(600));
        assert_eq!(h.on_reply(1, 3, false), None, "one answer is not f+1");
        assert_eq!(
            h.on_reply(1, 3, false),
            None,
            "the same peer twice counts once"
        );
        assert_eq!(
            h.on_reply(2, 4, false),
            Some(Hold::Voting),
            "late at genesis: nothing to hold"
        );
        assert!(!h.holding());
        assert!(!h.wants_query(10_000));
    }

    #[test]
    fn a_wiped_validator_waits_past_the_window_above_the_highest_answer() {
        let mut h = VotingHold::new(Hold::Asking, 4, 8);
        assert!(!h.on_executed(1_000), "asking: never lifted by execution");
        assert_eq!(h.on_reply(3, 40, false), None);
        assert_eq!(h.on_reply(1, 42, true), Some(Hold::Until(50)));
        assert_eq!(h.on_reply(2, 1_000, true), None, "decided already");
        assert!(h.holding());
        assert!(!h.on_executed(49));
        assert!(h.on_executed(50));
        assert!(!h.holding());
    }

    #[test]
    fn a_validator_without_a_hold_votes() {
        let mut h = VotingHold::new(Hold::Voting, 7, 8);
        assert!(!h.holding());
        assert!(!h.wants_query(0));
        assert_eq!(h.on_reply(1, 5, true), None);
    }

    #[test]
    fn the_stored_form_round_trips() {
        for hold in [Hold::Voting, Hold::Asking, Hold::Until(0), Hold::Until(77)] {
            assert_eq!(Hold::from_stored(hold.to_stored()), hold);
        }
        assert_eq!(Hold::from_stored(None), Hold::Voting);
    }
}
