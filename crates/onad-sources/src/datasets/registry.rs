//! The data set registry: every labelled data set onad knows by name, with where it comes from, its
//! licence, its shape and the sha256 of the CSV file that [`fetch`](super::fetch) verifies.

use std::fmt;
use std::path::{Path, PathBuf};

/// The application a data set stands for (the themes of the streaming guide's built-in data sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Theme {
    /// Card transactions.
    Fraud,
    /// Network connections.
    Network,
    /// Sensor readings of machines.
    Iot,
    /// Server metrics.
    System,
    /// Classic tabular outlier-detection benchmarks (one row per object, no time order to speak of).
    Tabular,
    /// A univariate signal sampled at a fixed rate.
    TimeSeries,
}

impl Theme {
    /// The theme's name in upper case, as the guide writes it (`FRAUD`, `NETWORK`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Fraud => "FRAUD",
            Theme::Network => "NETWORK",
            Theme::Iot => "IOT",
            Theme::System => "SYSTEM",
            Theme::Tabular => "TABULAR",
            Theme::TimeSeries => "TIMESERIES",
        }
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One data set of the registry: a CSV file with a header, whose label column is 1 for an anomaly and 0
/// otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// The registry name (lower case), as typed on the command line: `fraud`, `network-http`, ...
    pub name: &'static str,
    /// What the data stands for.
    pub theme: Theme,
    /// One line saying what the data is.
    pub description: &'static str,
    /// Data rows (the header excluded).
    pub rows: u64,
    /// Feature columns: every column except the label and [`other_columns`](Self::other_columns).
    pub features: usize,
    /// Rows labelled as anomalies.
    pub anomalies: u64,
    /// `anomalies / rows`.
    pub anomaly_rate: f64,
    /// The column holding the label.
    pub label_column: &'static str,
    /// Columns that are neither features nor the label (identifiers, timestamps, text classes, other
    /// labels); a source should leave them out.
    pub other_columns: &'static [&'static str],
    /// The licence of the data.
    pub licence: &'static str,
    /// The canonical public page of the upstream data.
    pub origin_url: &'static str,
    /// The file name, in the cache and under a fetch base.
    pub file_name: &'static str,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The sha256 of the file, lower-case hex.
    pub sha256: &'static str,
    /// Whether the licence lets onad ship the data in its repository (the `shippable/` sets). `false` for
    /// the reference-only sets, which may not be redistributed: they are only ever fetched into a cache.
    pub shipped: bool,
}

impl DatasetInfo {
    /// The folder of the shared data directory that holds this file: `shippable` or `reference-only`.
    pub fn shared_subdir(&self) -> &'static str {
        if self.shipped { "shippable" } else { "reference-only" }
    }

    /// Where [`fetch`](super::fetch) puts the file in `cache_dir`.
    pub fn cache_path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(self.file_name)
    }
}

/// Every data set onad knows, the guide's themes first (reference-only), then the shippable sets.
pub static REGISTRY: &[DatasetInfo] = &[
    DatasetInfo {
        name: "fraud",
        theme: Theme::Fraud,
        description: "ULB credit-card transactions (Time, V1..V28 PCA components, Amount): all 492 frauds and \
                      1,230 normal ones; subsample the frauds for a realistic rate",
        rows: 1_722,
        features: 30,
        anomalies: 492,
        anomaly_rate: 492.0 / 1_722.0,
        label_column: "label",
        other_columns: &[],
        licence: "ODbL / DbCL 1.0",
        origin_url: "https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud",
        file_name: "creditcard_ulb_sample.csv",
        bytes: 661_372,
        sha256: "5ac52c32d7ca4d489c38d0be533882defe712c99ceb708f8d06ac8734c03d912",
        shipped: false,
    },
    DatasetInfo {
        name: "network-http",
        theme: Theme::Network,
        description: "KDD Cup 99 http connections (duration, src_bytes, dst_bytes, log-transformed), attacks \
                      labelled, original time order",
        rows: 567_498,
        features: 3,
        anomalies: 2_211,
        anomaly_rate: 2_211.0 / 567_498.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/130/kdd+cup+1999+data",
        file_name: "kdd99_http.csv",
        bytes: 15_194_396,
        sha256: "e9f593ee44fbda03c89b933c82585998996ed0392dadbaf1fbd0ca006e227a91",
        shipped: false,
    },
    DatasetInfo {
        name: "network-smtp",
        theme: Theme::Network,
        description: "KDD Cup 99 smtp connections, same construction as network-http",
        rows: 95_156,
        features: 3,
        anomalies: 30,
        anomaly_rate: 30.0 / 95_156.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/130/kdd+cup+1999+data",
        file_name: "kdd99_smtp.csv",
        bytes: 2_540_648,
        sha256: "c3e3f3a27e817998e495b3faf47e839b8315215b8c645969f39f728dd7a4ca63",
        shipped: false,
    },
    DatasetInfo {
        name: "iot-skab",
        theme: Theme::Iot,
        description: "Skoltech Anomaly Benchmark: 8 sensors of a water-pump testbed, 34 labelled runs \
                      (`experiment` names the run)",
        rows: 37_401,
        features: 8,
        anomalies: 13_067,
        anomaly_rate: 13_067.0 / 37_401.0,
        label_column: "label",
        other_columns: &["experiment", "datetime", "changepoint"],
        licence: "GPL-3.0",
        origin_url: "https://github.com/waico/SKAB",
        file_name: "skab.csv",
        bytes: 3_694_650,
        sha256: "5bcd1192e0276931226df4f59e69ab95dc54a9f7080ee07087e5541c165df6ce",
        shipped: false,
    },
    DatasetInfo {
        name: "iot-nab",
        theme: Theme::Iot,
        description: "NAB realKnownCause series in long format (machine temperature, CPU, latency, taxi); \
                      `label` marks the anomaly windows, `label_point` the labelled instants",
        rows: 62_364,
        features: 1,
        anomalies: 5_874,
        anomaly_rate: 5_874.0 / 62_364.0,
        label_column: "label",
        other_columns: &["series", "timestamp", "label_point"],
        licence: "MIT",
        origin_url: "https://github.com/numenta/NAB",
        file_name: "nab_known_cause.csv",
        bytes: 4_012_264,
        sha256: "4541fa74400074cf68d7271de089cdd61abc2584e3c349780f2b446ee20712ae",
        shipped: false,
    },
    DatasetInfo {
        name: "system-smd",
        theme: Theme::System,
        description: "Server Machine Dataset, machine-2-1: 38 metrics, the train split (no anomalies) then the \
                      test split (4.94 % anomalies)",
        rows: 47_387,
        features: 38,
        anomalies: 1_170,
        anomaly_rate: 1_170.0 / 47_387.0,
        label_column: "label",
        other_columns: &["t", "split"],
        licence: "MIT",
        origin_url: "https://github.com/NetManAIOps/OmniAnomaly",
        file_name: "smd_machine-2-1.csv",
        bytes: 12_864_337,
        sha256: "a4bb216c7b0b37781ab3b9d399784e8ef7e99102a3776113994874326542a130",
        shipped: false,
    },
    DatasetInfo {
        name: "shuttle",
        theme: Theme::Tabular,
        description: "NASA space-shuttle sensor readings, ODDS construction (classes 2, 3, 5, 6, 7 are \
                      anomalies, class 4 removed)",
        rows: 49_097,
        features: 9,
        anomalies: 3_511,
        anomaly_rate: 3_511.0 / 49_097.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/148/statlog+shuttle",
        file_name: "shuttle_odds.csv",
        bytes: 1_297_312,
        sha256: "241fa726348a78c146603f75f15d53112009ceb96e169b9e301e14ec3daefcf1",
        shipped: true,
    },
    DatasetInfo {
        name: "shuttle-full",
        theme: Theme::Tabular,
        description: "the full Statlog Shuttle with its 7-class `class` column; every class but Rad.Flow is an \
                      anomaly",
        rows: 58_000,
        features: 9,
        anomalies: 12_414,
        anomaly_rate: 12_414.0 / 58_000.0,
        label_column: "label",
        other_columns: &["class"],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/148/statlog+shuttle",
        file_name: "shuttle_full_statlog.csv",
        bytes: 2_017_728,
        sha256: "14b6fdd41ed37c31c3b747f78c3201b1e209743f1c40563a6be1e43a7414d20d",
        shipped: true,
    },
    DatasetInfo {
        name: "glass",
        theme: Theme::Tabular,
        description: "glass identification (refractive index and oxides); type 6 (tableware) is the anomaly",
        rows: 214,
        features: 9,
        anomalies: 9,
        anomaly_rate: 9.0 / 214.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/42/glass+identification",
        file_name: "glass_odds.csv",
        bytes: 9_839,
        sha256: "0bcfe8114902b5e16660c928a4f2d42262450b35cd9abae58190b0e662777de8",
        shipped: true,
    },
    DatasetInfo {
        name: "breastw",
        theme: Theme::Tabular,
        description: "Wisconsin breast cancer (original), malignant is the anomaly; rows with missing values \
                      dropped",
        rows: 683,
        features: 9,
        anomalies: 239,
        anomaly_rate: 239.0 / 683.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/15/breast+cancer+wisconsin+original",
        file_name: "breastw_odds.csv",
        bytes: 14_281,
        sha256: "b82c7c7ac04fddd16506ce1dc4fc8d1369514c4d8f81182faa9639dff0550d2f",
        shipped: true,
    },
    DatasetInfo {
        name: "spambase",
        theme: Theme::Tabular,
        description: "e-mail spam features (word and character frequencies, capital runs); spam is the anomaly \
                      (an abuse stand-in: downsample it for a realistic rate)",
        rows: 4_601,
        features: 57,
        anomalies: 1_813,
        anomaly_rate: 1_813.0 / 4_601.0,
        label_column: "label",
        other_columns: &[],
        licence: "CC BY 4.0",
        origin_url: "https://archive.ics.uci.edu/dataset/94/spambase",
        file_name: "spambase.csv",
        bytes: 698_767,
        sha256: "fea1e22984661a977ae39070e7887a302f1443aea69aa14d7907def1ccdff5aa",
        shipped: true,
    },
    DatasetInfo {
        name: "ecg",
        theme: Theme::TimeSeries,
        description: "one ECG lead of the MIT-BIH Arrhythmia Database, abnormal beats labelled (`t` is the \
                      sample index)",
        rows: 7_500,
        features: 1,
        anomalies: 352,
        anomaly_rate: 352.0 / 7_500.0,
        label_column: "label",
        other_columns: &["t"],
        licence: "ODC-BY 1.0",
        origin_url: "https://physionet.org/content/mitdb/1.0.0/",
        file_name: "ts_mitdb_ecg.csv",
        bytes: 99_490,
        sha256: "a42030381a84d3077b741a224b0ae8ea22d8f2e60e25bafa00307fd1bed23e75",
        shipped: true,
    },
];

/// The data set with this registry name (case-insensitive), or with this file name.
pub fn find(name: &str) -> Option<&'static DatasetInfo> {
    let name = name.trim();
    REGISTRY.iter().find(|d| d.name.eq_ignore_ascii_case(name) || d.file_name == name)
}
