# store: the power-loss-safe key-value store over the port's flash.
store_REQUIRES := util
store_LIBS     :=
