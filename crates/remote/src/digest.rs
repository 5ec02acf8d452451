//! What both sides hash, and how the result is checked.
//!
//! Pages are hashed by groups of [`GROUP_PAGES`] (BLAKE3 of the group's
//! bytes). The whole file's hash is the BLAKE3 of its page size, its page
//! count and its groups' hashes in order: a hash tree of one level. So the
//! client checks a refreshed base by hashing again only the groups that
//! changed (the others' hashes it took from the copy of the old base before
//! a page came), and the helper hashes each group once.

use std::io;

use crate::frame::short_hash;
use crate::helper::Pages;

/// Pages per group: of the first round's hashes, and of the whole-file tree.
pub const GROUP_PAGES: u64 = 256;

/// Pages `[from, to)` of group `g` in a file of `pages` pages (0-based).
pub(crate) fn group_range(g: u64, group_pages: u64, pages: u64) -> (u64, u64) {
    let from = (g * group_pages).min(pages);
    (from, ((g + 1) * group_pages).min(pages))
}

/// The BLAKE3 of pages `[from, to)`.
pub(crate) fn digest_pages(source: &dyn Pages, (from, to): (u64, u64)) -> io::Result<[u8; 32]> {
    let mut buf = vec![0u8; ((to - from) * u64::from(source.page_size())) as usize];
    source.read_pages(from, &mut buf)?;
    Ok(*blake3::hash(&buf).as_bytes())
}

/// The short hash of pages `[from, to)`: what both sides compare.
pub(crate) fn hash_pages(source: &dyn Pages, range: (u64, u64)) -> io::Result<[u8; 16]> {
    let mut buf = vec![0u8; ((range.1 - range.0) * u64::from(source.page_size())) as usize];
    source.read_pages(range.0, &mut buf)?;
    Ok(short_hash(&buf))
}

/// The whole file's hash, from its groups' hashes.
pub(crate) fn tree(page_size: u32, pages: u64, groups: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"refresh-dev pages\0");
    hasher.update(&page_size.to_le_bytes());
    hasher.update(&pages.to_le_bytes());
    for g in groups {
        hasher.update(g);
    }
    *hasher.finalize().as_bytes()
}

/// The hash of each of an image's groups, in order.
pub(crate) fn group_digests(source: &dyn Pages) -> io::Result<Vec<[u8; 32]>> {
    let pages = source.pages();
    (0..pages.div_ceil(GROUP_PAGES))
        .map(|g| digest_pages(source, group_range(g, GROUP_PAGES, pages)))
        .collect()
}

/// The whole hash of an image: each group read and hashed once.
#[cfg(test)]
pub(crate) fn tree_hash(source: &dyn Pages) -> io::Result<[u8; 32]> {
    Ok(tree(source.page_size(), source.pages(), &group_digests(source)?))
}

/// Groups' hashes taken as pages arrive in order (a first copy), so the
/// file need not be read again to be checked.
pub(crate) struct InOrder {
    page_size: u64,
    next: u64,
    hasher: blake3::Hasher,
    pub groups: Vec<[u8; 32]>,
}

impl InOrder {
    pub fn new(page_size: u32) -> InOrder {
        InOrder {
            page_size: u64::from(page_size),
            next: 0,
            hasher: blake3::Hasher::new(),
            groups: Vec::new(),
        }
    }

    /// Pages from `start` on, `bytes` of them; `false` once they come out of order.
    pub fn update(&mut self, start: u64, mut bytes: &[u8]) -> bool {
        if start != self.next {
            return false;
        }
        while !bytes.is_empty() {
            let left_in_group = GROUP_PAGES - self.next % GROUP_PAGES;
            let take = (left_in_group * self.page_size).min(bytes.len() as u64) as usize;
            self.hasher.update(&bytes[..take]);
            self.next += take as u64 / self.page_size;
            bytes = &bytes[take..];
            if self.next.is_multiple_of(GROUP_PAGES) {
                self.groups.push(*self.hasher.finalize().as_bytes());
                self.hasher.reset();
            }
        }
        true
    }

    /// The tree of a file of `pages` pages, if they all came in order.
    pub fn finish(mut self, page_size: u32, pages: u64) -> Option<[u8; 32]> {
        if self.next != pages {
            return None;
        }
        if !self.next.is_multiple_of(GROUP_PAGES) {
            self.groups.push(*self.hasher.finalize().as_bytes());
        }
        Some(tree(page_size, pages, &self.groups))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Memory(Vec<u8>);
    impl Pages for Memory {
        fn page_size(&self) -> u32 {
            512
        }
        fn pages(&self) -> u64 {
            self.0.len() as u64 / 512
        }
        fn mode(&self) -> u32 {
            0o600
        }
        fn read_pages(&self, first: u64, buf: &mut [u8]) -> io::Result<()> {
            let at = (first * 512) as usize;
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn pages_in_order_hash_as_the_whole_image_does() {
        for pages in [0u64, 1, 255, 256, 257, 700] {
            let image = Memory((0..pages * 512).map(|i| (i * 7 % 251) as u8).collect());
            let mut in_order = InOrder::new(512);
            // Runs of odd lengths, across group boundaries.
            let mut p = 0;
            while p < pages {
                let n = (p % 5 + 1).min(pages - p);
                assert!(in_order.update(p, &image.0[(p * 512) as usize..((p + n) * 512) as usize]));
                p += n;
            }
            assert_eq!(
                in_order.finish(512, pages),
                Some(tree_hash(&image).expect("hash")),
                "{pages} pages"
            );
        }
        let mut in_order = InOrder::new(512);
        assert!(!in_order.update(3, &[0; 512]), "out of order");
        // One byte changed anywhere changes the whole hash.
        let image = Memory(vec![1; 300 * 512]);
        let mut other = Memory(vec![1; 300 * 512]);
        other.0[299 * 512] = 2;
        assert_ne!(tree_hash(&image).expect("hash"), tree_hash(&other).expect("hash"));
    }
}
