# agent: desired state, the delivery step, settings and secrets.
agent_REQUIRES := cdnapi crypto http queue retry sign store util vault
agent_LIBS     :=
