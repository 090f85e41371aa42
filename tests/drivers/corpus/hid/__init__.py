"""HID scanner event streams per keyboard layout, and the xkb reference they come from."""
