"""The write path: uploads checked and decoded (`prepare`, in a process pool for folders: `decode_pool`), stored with
their vectors (`service`, `item_vectors`), read from files, folders and manifests (`sources`), texts revised
(`revise`) and spaces backfilled (`backfill`)."""
