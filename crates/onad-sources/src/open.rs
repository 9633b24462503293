//! Opens a source by file extension, with a clear error when the connector was not compiled in.

use std::path::Path;

use onad_core::{Source, SourceError};

use crate::options::SourceOptions;

/// The file formats `open` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`, `.tsv` (tab-delimited), `.txt`.
    Csv,
    /// `.parquet`, `.pq`.
    Parquet,
}

impl Format {
    /// Guesses the format from a path's extension.
    pub fn from_path(path: &Path) -> Result<Format, SourceError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(SourceError::Unsupported(format!(
                "{}: unknown file type '{ext}' (expected .csv, .tsv or .parquet)",
                path.display()
            ))),
        }
    }
}

/// Opens a file as a source, choosing the connector from its extension.
pub fn open(path: &Path, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    if !path.exists() {
        return Err(SourceError::Io {
            source_name: path.display().to_string(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    match Format::from_path(path)? {
        #[cfg(feature = "csv")]
        Format::Csv => {
            let tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
            let csv_options =
                crate::CsvOptions { base: options, delimiter: if tsv { b'\t' } else { b',' }, ..Default::default() };
            Ok(Box::new(crate::CsvSource::open(path, csv_options)?))
        }
        #[cfg(not(feature = "csv"))]
        Format::Csv => {
            let _ = options;
            Err(SourceError::NotCompiled { connector: "csv".into(), feature: "csv".into() })
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => Ok(Box::new(crate::ParquetSource::open(path, options)?)),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => {
            let _ = options;
            Err(SourceError::NotCompiled { connector: "parquet".into(), feature: "parquet".into() })
        }
    }
}
