# queue: the durable retry queue, entries in the store.
queue_REQUIRES := store retry util
queue_LIBS     :=
