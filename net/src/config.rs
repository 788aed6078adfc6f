//! Configuration of one validator's network endpoint.

use crate::NetError;
use lanes_types::{PublicKey, SecretKey, ValidatorSet};
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Default largest message: 16 MiB (a full block of the local defaults is about 10 MB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Another validator and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its index in the genesis validator set.
    pub index: u32,
    /// Its validator key (its TLS certificate must carry this key).
    pub public_key: PublicKey,
    /// Its QUIC endpoint.
    pub addr: SocketAddr,
}

/// Everything [`crate::Network::start`] needs.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// This validator's index in the validator set.
    pub me: u32,
    /// This validator's key: signs its TLS handshakes (and seeds its QUIC reset key).
    pub key: SecretKey,
    /// Address to bind the UDP socket to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The other validators (not this one). Only their keys are accepted.
    pub peers: Vec<PeerAddr>,
    /// Largest message in bytes, both ways. A peer announcing a bigger frame is disconnected;
    /// sending a bigger message is an error. At most `u32::MAX`.
    pub max_frame: usize,
    /// Most messages queued for one peer; beyond it the oldest queued message is dropped.
    pub queue_len: usize,
    /// Most bytes queued for one peer (at least `max_frame`); beyond it the oldest queued
    /// messages are dropped.
    pub queue_bytes: usize,
    /// Capacity of the inbound channel handed to the node. When it is full, readers stop
    /// reading and QUIC flow control slows the senders down.
    pub inbound_len: usize,
    /// A connection with no traffic for this long is dead (QUIC uses the smaller of both
    /// sides' values). Also bounds a handshake.
    pub idle_timeout: Duration,
    /// Keep-alive interval; must be below `idle_timeout` (a third of it is a good choice).
    pub keep_alive: Duration,
    /// First delay before redialing a peer that could not be reached or went away.
    pub backoff_min: Duration,
    /// The delay doubles per failed attempt up to this (with +-25% jitter); at most an hour.
    pub backoff_max: Duration,
    /// Most inbound handshakes in progress at once; further attempts are refused.
    pub max_handshakes: usize,
}

impl NetConfig {
    /// A configuration with default limits and timings.
    pub fn new(me: u32, key: SecretKey, listen: SocketAddr, peers: Vec<PeerAddr>) -> NetConfig {
        NetConfig {
            me,
            key,
            listen,
            peers,
            max_frame: DEFAULT_MAX_FRAME,
            queue_len: 1024,
            queue_bytes: 4 * DEFAULT_MAX_FRAME,
            inbound_len: 4096,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(3),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_handshakes: 64,
        }
    }

    /// The configuration for validator `me` of `validators` (from genesis): every other
    /// validator is a peer at its genesis address (resolved now, first address wins).
    /// Fails if `key` is not validator `me`'s key or an address does not resolve.
    pub fn from_validators(
        me: u32,
        key: SecretKey,
        listen: SocketAddr,
        validators: &ValidatorSet,
    ) -> Result<NetConfig, NetError> {
        let mine = validators
            .get(me)
            .ok_or_else(|| NetError::Config(format!("validator {me} is not in the set")))?;
        if mine.public_key != key.public_key() {
            return Err(NetError::Config(format!(
                "the key given is not validator {me}'s key"
            )));
        }
        let mut peers = Vec::with_capacity(validators.len().saturating_sub(1));
        for (i, v) in validators.validators().iter().enumerate() {
            let index = i as u32;
            if index == me {
                continue;
            }
            let addr = v
                .address
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
                .map_err(|reason| NetError::Resolve {
                    index,
                    address: v.address.clone(),
                    reason,
                })?;
            peers.push(PeerAddr {
                index,
                public_key: v.public_key,
                addr,
            });
        }
        Ok(NetConfig::new(me, key, listen, peers))
    }

    /// Checks limits, timings and the peer list (unique indexes and keys, none of them ours,
    /// keys fit to be validator keys).
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |s: String| Err(NetError::Config(s));
        if self.max_frame == 0 || self.max_frame as u64 > u32::MAX as u64 {
            return bad(format!(
                "max_frame {} must be in 1..=2^32-1",
                self.max_frame
            ));
        }
        if self.queue_len == 0 || self.inbound_len == 0 || self.max_handshakes == 0 {
            return bad("queue_len, inbound_len and max_handshakes must be positive".into());
        }
        if self.queue_bytes < self.max_frame {
            return bad(format!(
                "queue_bytes {} is below max_frame {}",
                self.queue_bytes, self.max_frame
            ));
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return bad(format!(
                "keep_alive {:?} must be positive and below idle_timeout {:?}",
                self.keep_alive, self.idle_timeout
            ));
        }
        if quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return bad(format!("idle_timeout {:?} is too long", self.idle_timeout));
        }
        if self.backoff_min.is_zero()
            || self.backoff_min > self.backoff_max
            || self.backoff_max > Duration::from_secs(3600)
        {
            return bad(format!(
                "backoff {:?}..{:?} must be positive, ordered and at most an hour",
                self.backoff_min, self.backoff_max
            ));
        }
        let my_key = self.key.public_key();
        let mut indexes = HashSet::new();
        let mut keys = HashSet::new();
        for p in &self.peers {
            if p.index == self.me || p.public_key == my_key {
                return bad(format!("peer {} is this validator", p.index));
            }
            if !indexes.insert(p.index) {
                return bad(format!("peer index {} appears twice", p.index));
            }
            if !keys.insert(p.public_key) {
                return bad(format!("peer {}'s key appears twice", p.index));
            }
            if let Err(e) = p.public_key.validate() {
                return bad(format!("peer {}'s key: {e}", p.index));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::ValidatorInfo;

    fn set(n: usize) -> (Vec<SecretKey>, ValidatorSet) {
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::from_label(&format!("v{i}")))
            .collect();
        let infos = ValidatorInfo::local(&keys, 9000);
        (keys, ValidatorSet::new(infos))
    }

    #[test]
    fn from_validators_lists_the_others() {
        let (keys, vs) = set(4);
        let listen = "127.0.0.1:0".parse().unwrap();
        let c = NetConfig::from_validators(2, keys[2].clone(), listen, &vs).unwrap();
        assert_eq!(
            c.peers.iter().map(|p| p.index).collect::<Vec<_>>(),
            vec![0, 1, 3]
        );
        assert_eq!(c.peers[2].addr, "127.0.0.1:9003".parse().unwrap());
        c.validate().unwrap();
        assert!(NetConfig::from_validators(2, keys[1].clone(), listen, &vs).is_err());
        assert!(NetConfig::from_validators(9, keys[1].clone(), listen, &vs).is_err());
    }

    #[test]
    fn validate_refuses_bad_settings() {
        let (keys, vs) = set(4);
        let listen = "127.0.0.1:0".parse().unwrap();
        let ok = NetConfig::from_validators(0, keys[0].clone(), listen, &vs).unwrap();
        let mut c = ok.clone();
        c.keep_alive = c.idle_timeout;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.queue_bytes = c.max_frame - 1;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.peers[1].index = c.peers[0].index;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.peers[1].public_key = keys[0].public_key();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.peers[0].public_key = PublicKey([0; 32]);
        assert!(c.validate().is_err());
        let mut c = ok;
        c.max_frame = 0;
        assert!(c.validate().is_err());
    }
}
