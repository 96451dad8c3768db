"""Replaces PyInstaller's hook for PySide6.QtGui (user hooks take precedence): the same collection, minus the Qt
plugins a desktop widgets app does not need on Linux.

Filtering here, before PyInstaller analyses the plugins' own library dependencies, matters: the GTK 3 platform
theme alone drags in the build machine's GTK stack (cairo, pango, gdk-pixbuf, glib, ...), which would then be
mixed with the user's own GTK at run time. Without it Qt draws its own widgets, and the app sets its own style.
Windows and macOS keep their platform plugins (qwindows, qcocoa): only names listed below are dropped.
"""
import os

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

hiddenimports, binaries, datas = add_qt6_dependencies(__file__)

# plugin folder → plugin file names (without lib prefix / extension) to drop; "*" drops the whole folder.
_DROP = {
    "platformthemes": {"qgtk3"},                  # keep qxdgdesktopportal (file dialogs through the desktop portal)
    "platforms": {"qeglfs", "qlinuxfb", "qvnc", "qvkkhrdisplay", "qminimalegl"},  # keep xcb, wayland, offscreen, minimal
    "egldeviceintegrations": {"*"},               # only for eglfs (embedded, no window system)
    "generic": {"*"},                             # evdev / tuio touch input for embedded systems
    "imageformats": {"qpdf", "qtiff", "qwebp", "qtga", "qwbmp", "qicns"},  # keep svg, ico, jpeg, gif
}


def _wanted(src_dest):
    source, dest = src_dest
    folder = os.path.basename(os.path.normpath(dest))
    stem = os.path.basename(source).split(".")[0]
    stem = stem[3:] if stem.startswith("lib") else stem
    drop = _DROP.get(folder, set())
    return not ("*" in drop or stem in drop)


binaries = [entry for entry in binaries if _wanted(entry)]
