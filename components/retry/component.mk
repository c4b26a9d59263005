# retry: backoff with jitter and the token bucket; pure arithmetic.
retry_REQUIRES :=
retry_LIBS     :=
