//! Shared helpers of the privileged end-to-end tests.
