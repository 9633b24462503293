//! A large zeroed table of plain integer cells that Linux may back with transparent huge pages.
//!
//! Count sketches read a few thousand cells a row at random places in tens of megabytes; with 4 KiB
//! pages nearly every read also misses the TLB. An anonymous mapping advised `MADV_HUGEPAGE` lets the
//! kernel use 2 MiB pages where its policy allows (`/sys/kernel/mm/transparent_hugepage/enabled` set to
//! `madvise` or `always`); elsewhere, or for small tables, the cells are an ordinary vector. Either way
//! the table is a `[T]` and serializes as one, so checkpoints do not depend on the backing.

use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Tables below this many bytes stay on the heap (a huge page is 2 MiB).
const MAP_FROM_BYTES: usize = 4 << 20;

/// A table of `T` cells (`u64` unless said), zeroed at creation.
pub(crate) struct Cells<T: Pod = u64> {
    backing: Backing<T>,
}

enum Backing<T> {
    Heap(Vec<T>),
    /// `len` cells at the start of an anonymous mapping (page-aligned, so aligned for any integer).
    Mapped {
        map: memmap2::MmapMut,
        len: usize,
    },
}

impl<T: Pod> Cells<T> {
    /// `len` zeroed cells.
    pub(crate) fn zeroed(len: usize) -> Cells<T> {
        let bytes = len.saturating_mul(size_of::<T>());
        if bytes >= MAP_FROM_BYTES
            && let Ok(map) = memmap2::MmapOptions::new().len(bytes).map_anon()
        {
            // A hint only: a kernel without transparent huge pages, or with them off, keeps 4 KiB pages.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            return Cells { backing: Backing::Mapped { map, len } };
        }
        Cells { backing: Backing::Heap(vec![T::zeroed(); len]) }
    }

    fn from_slice(values: &[T]) -> Cells<T> {
        let mut cells = Cells::zeroed(values.len());
        cells.copy_from_slice(values);
        cells
    }
}

impl<T: Pod> Default for Cells<T> {
    fn default() -> Self {
        Cells { backing: Backing::Heap(Vec::new()) }
    }
}

impl<T: Pod> Deref for Cells<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.backing {
            Backing::Heap(v) => v,
            Backing::Mapped { map, len } => &bytemuck::cast_slice(&map[..])[..*len],
        }
    }
}

impl<T: Pod> DerefMut for Cells<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.backing {
            Backing::Heap(v) => v,
            Backing::Mapped { map, len } => &mut bytemuck::cast_slice_mut(&mut map[..])[..*len],
        }
    }
}

impl<T: Pod> Clone for Cells<T> {
    fn clone(&self) -> Self {
        Cells::from_slice(self)
    }
}

impl<T: Pod + PartialEq> PartialEq for Cells<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Pod> std::fmt::Debug for Cells<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mapped = matches!(self.backing, Backing::Mapped { .. });
        f.debug_struct("Cells").field("len", &self.len()).field("mapped", &mapped).finish()
    }
}

impl<T: Pod + Serialize> Serialize for Cells<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de, T: Pod + Deserialize<'de>> Deserialize<'de> for Cells<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<T>::deserialize(deserializer)?;
        if values.len() * size_of::<T>() >= MAP_FROM_BYTES {
            Ok(Cells::from_slice(&values))
        } else {
            Ok(Cells { backing: Backing::Heap(values) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_cells_map_from_the_same_byte_size_and_serialize_like_vectors() {
        for len in [5, (MAP_FROM_BYTES / 4) - 1, MAP_FROM_BYTES / 4] {
            let mut cells: Cells<u32> = Cells::zeroed(len);
            assert_eq!(matches!(cells.backing, Backing::Mapped { .. }), len * 4 >= MAP_FROM_BYTES, "{len}");
            assert!(cells.iter().all(|&c| c == 0));
            cells[len - 1] = u32::MAX;
            cells[0] = 7;
            let bytes = postcard::to_stdvec(&cells).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&cells.to_vec()).unwrap());
            let back: Cells<u32> = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, cells);
        }
    }

    #[test]
    fn small_and_large_tables_are_zeroed_slices_that_serialize_like_vectors() {
        for len in [0, 3, 1 << 20] {
            let mut cells = Cells::zeroed(len);
            assert_eq!(cells.len(), len);
            assert!(cells.iter().all(|&c| c == 0));
            assert_eq!(matches!(cells.backing, Backing::Mapped { .. }), len * 8 >= MAP_FROM_BYTES, "{len}");
            for (i, c) in cells.iter_mut().enumerate().step_by(997) {
                *c = i as u64 * 3 + 1;
            }
            let as_vec: Vec<u64> = cells.to_vec();
            let bytes = postcard::to_stdvec(&cells).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&as_vec).unwrap());
            let back: Cells = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, cells);
            assert_eq!(cells.clone(), cells);
            if len > 0 {
                let copy = cells.clone();
                cells[len - 1] += 1;
                assert_ne!(copy, cells, "a clone is a copy");
            }
        }
    }
}
