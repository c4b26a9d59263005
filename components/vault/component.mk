# vault: secrets sealed with AES-256-GCM under the device key.
vault_REQUIRES := util
vault_LIBS     := mbedtls
