"""The small core every capability stands on: config, the store, jobs, locks, policy, audit writing,
the operation framework, texts and generic Block Kit builders. Imports nothing above it."""
