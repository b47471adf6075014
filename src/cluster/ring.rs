//! Which node of a tier owns an object: ketama consistent hashing
//! (`pingora-ketama`, the nginx `hash ... consistent` ring) over the tier's
//! cluster addresses. Every node builds the same ring from the same list, so
//! they agree on owners without talking; adding or removing one of N nodes
//! moves about 1/N of the keys.

use std::net::SocketAddr;

use pingora_ketama::{Bucket, Continuum};
use sha2::{Digest, Sha256};

/// Points per node on the ring (ketama's weight): 160 points per weight unit
/// spread the keys within a few percent of even.
const WEIGHT: u32 = 1;

/// The nodes of one tier (a ring of peers, or the parents).
pub struct Ring {
    members: Vec<SocketAddr>,
    continuum: Continuum,
    digest: String,
}

impl Ring {
    /// A ring of `members` (sorted and deduplicated: the order of a list or of
    /// DNS answers does not change owners).
    pub fn new(mut members: Vec<SocketAddr>) -> Ring {
        members.sort();
        members.dedup();
        let buckets: Vec<Bucket> = members.iter().map(|m| Bucket::new(*m, WEIGHT)).collect();
        let mut hash = Sha256::new();
        for member in &members {
            hash.update(member.to_string().as_bytes());
            hash.update(b",");
        }
        let digest = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ring {
            continuum: Continuum::new(&buckets),
            members,
            digest,
        }
    }

    pub fn members(&self) -> &[SocketAddr] {
        &self.members
    }

    /// 16 hex digits naming the members: equal on two nodes exactly when
    /// they hash keys over the same addresses (whatever order their lists
    /// or DNS answers came in).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, the owner of `key` first, then the next ones clockwise on
    /// the ring: where a request goes when the ones before it are down.
    pub fn ranked(&self, key: &[u8]) -> Vec<SocketAddr> {
        let mut ranked: Vec<SocketAddr> = Vec::with_capacity(self.members.len());
        if self.members.is_empty() {
            return ranked;
        }
        // Each node has many points: walk until each has been seen once, the
        // walk bounded by the number of points.
        for addr in self
            .continuum
            .node_iter(key)
            .take(self.members.len() * 160 * WEIGHT as usize)
        {
            if !ranked.contains(addr) {
                ranked.push(*addr);
                if ranked.len() == self.members.len() {
                    break;
                }
            }
        }
        ranked
    }
}

/// The ring key of an object: the site name and the full object key,
/// length-prefixed so no two pairs give the same bytes.
pub fn object_hash_key(site: &str, object_key: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(site.len() + object_key.len() + 8);
    key.extend_from_slice(&(site.len() as u32).to_be_bytes());
    key.extend_from_slice(site.as_bytes());
    key.extend_from_slice(object_key.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, (i + 1) as u8], 7070)))
            .collect()
    }

    #[test]
    fn every_node_computes_the_same_owner_whatever_the_list_order() {
        let a = Ring::new(addrs(3));
        let mut reversed = addrs(3);
        reversed.reverse();
        let b = Ring::new(reversed);
        for i in 0..500 {
            let key = object_hash_key("site", &format!("k{i}"));
            assert_eq!(a.ranked(&key), b.ranked(&key));
        }
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 16);
        assert_ne!(a.digest(), Ring::new(addrs(4)).digest());
        assert_ne!(a.digest(), Ring::new(addrs(2)).digest());
    }

    #[test]
    fn the_ranking_lists_every_member_once_owner_first() {
        let ring = Ring::new(addrs(4));
        let key = object_hash_key("s", "index.html");
        let ranked = ring.ranked(&key);
        assert_eq!(ranked.len(), 4);
        let mut sorted = ranked.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        assert!(Ring::new(Vec::new()).ranked(&key).is_empty());
    }

    #[test]
    fn keys_spread_over_the_nodes_and_adding_one_of_four_moves_about_a_quarter() {
        let three = Ring::new(addrs(3));
        let four = Ring::new(addrs(4));
        let n = 4000;
        let mut moved = 0;
        let mut per_node = std::collections::HashMap::new();
        for i in 0..n {
            let key = object_hash_key("site", &format!("objects/{i}.html"));
            let before = three.ranked(&key)[0];
            let after = four.ranked(&key)[0];
            *per_node.entry(before).or_insert(0) += 1;
            if before != after {
                moved += 1;
                // A key only ever moves to the new node.
                assert_eq!(after, addrs(4)[3]);
            }
        }
        assert!((n / 8..n * 3 / 8).contains(&moved), "{moved} of {n} moved");
        for count in per_node.values() {
            assert!((n / 5..n / 2).contains(count), "{per_node:?}");
        }
    }

    #[test]
    fn site_and_key_are_both_part_of_the_ring_key() {
        assert_ne!(object_hash_key("ab", "c"), object_hash_key("a", "bc"));
    }
}
