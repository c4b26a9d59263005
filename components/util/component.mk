# util: endian load/store, CRC-32, ASCII case folding, civil dates.
# Requires nothing, not even the port: pure functions.
util_REQUIRES :=
util_LIBS     :=
