"""The legacy MIFARE Classic (M1) city-card purse: block layouts, the key rule, its MACs and the tear-safe debit."""
