"""Where the bytes live: packed rows, frame stores (plain and compressed), memory or memmap
placement."""
