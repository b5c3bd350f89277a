//! The Sync Center (`ferry center`) in a real headless Chromium.
