"""Checks and selection: language, length, exact and near duplicates (merge), GX validation, and IFD scoring (ifd_score) and selection (ifd_select)."""
