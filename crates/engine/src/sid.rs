//! Session ids: 120 random bits from a CSPRNG, written as 20 URL-safe base64 characters.

use base64::Engine as _;
use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

/// An Engine.IO session id (also used for Socket.IO socket ids). `Copy`, hashable, 20 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sid([u8; 20]);

impl Hash for Sid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bytes alone (an array's derived hash also writes its length, a round more).
        state.write(&self.0);
    }
}

impl Sid {
    /// A new unguessable id.
    pub fn random() -> Sid {
        let raw: [u8; 15] = rand::random();
        let mut out = [0u8; 20];
        // 15 bytes encode to exactly 20 base64 characters, no padding.
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(raw, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(n, 20);
        Sid(out)
    }

    /// Parses an id a client sent; `None` unless it has the form this server generates.
    pub fn parse(s: &str) -> Option<Sid> {
        let b = s.as_bytes();
        if b.len() != 20
            || !b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(b);
        Some(Sid(out))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from URL-safe base64 characters.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

/// A [`Hasher`] for maps keyed by [`Sid`], and only for those: a few multiplications over the
/// id's characters in place of SipHash's rounds (a socket is looked up by its id on every
/// polling request, and on every delivery to a room). Ids are drawn by the server from a
/// CSPRNG, never chosen by a client; each map still starts from a random seed of its own
/// ([`SidHash`]), so that a client cannot pick, among ids it was given, ones that fall together
/// in every server's tables, and a set copied from another is not copied in its own order.
/// Not for keys a client chooses (room names, say): it is no defence against those.
#[derive(Debug, Clone, Copy)]
pub struct SidHasher(u64);

impl Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        // The multiplications mix upwards: the high bits are the well-mixed ones, and the
        // rotation brings bits 38 and up to where a table of up to 2^26 buckets reads its index.
        self.0.rotate_left(26)
    }
}

/// Builds [`SidHasher`]s (`HashMap<Sid, V, SidHash>`), each map with its own seed: a random one
/// per thread, moved on for every map (as the std's `RandomState` does with its keys).
#[derive(Debug, Clone, Copy)]
pub struct SidHash {
    seed: u64,
}

impl Default for SidHash {
    fn default() -> SidHash {
        thread_local! {
            static NEXT: Cell<u64> = Cell::new(rand::random());
        }
        let seed = NEXT.with(|next| {
            let seed = next.get();
            next.set(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
            seed
        });
        SidHash { seed }
    }
}

impl BuildHasher for SidHash {
    type Hasher = SidHasher;

    fn build_hasher(&self) -> SidHasher {
        SidHasher(self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_and_parse_back() {
        let a = Sid::random();
        let b = Sid::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 20);
        assert_eq!(Sid::parse(a.as_str()), Some(a));
    }

    #[test]
    fn parse_refuses_other_shapes() {
        assert_eq!(Sid::parse(""), None);
        assert_eq!(Sid::parse("short"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaa/"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(Sid::parse("éééééééééé"), None);
    }

    #[test]
    fn sid_hashes_spread_over_buckets() {
        // 4,096 random ids into 1,024 buckets by the low bits, as a table indexes them: about
        // 4 each; a hasher that left the low bits unmixed would crowd a few buckets.
        // The table also filters by the top 7 bits: all 128 values should turn up.
        let build = SidHash::default();
        let mut buckets = [0u32; 1024];
        let mut tops = [false; 128];
        for _ in 0..4096 {
            let h = build.hash_one(Sid::random());
            buckets[(h & 1023) as usize] += 1;
            tops[(h >> 57) as usize] = true;
        }
        let fullest = buckets.iter().copied().max().unwrap_or(0);
        assert!(fullest <= 20, "a bucket got {fullest} of 4096 ids");
        let seen = tops.iter().filter(|t| **t).count();
        assert!(seen >= 120, "{seen} of 128 top-bit values");
        let mut map: std::collections::HashMap<Sid, u32, SidHash> = Default::default();
        let ids: Vec<Sid> = (0..100).map(|_| Sid::random()).collect();
        for (i, id) in ids.iter().enumerate() {
            map.insert(*id, i as u32);
        }
        assert!(ids
            .iter()
            .enumerate()
            .all(|(i, id)| map.get(id) == Some(&(i as u32))));
        // Each map has a seed of its own: the same id lands elsewhere in another.
        let id = Sid::random();
        let (a, b) = (SidHash::default(), SidHash::default());
        assert_eq!(a.hash_one(id), a.hash_one(id));
        assert_ne!(a.hash_one(id), b.hash_one(id));
    }
}
