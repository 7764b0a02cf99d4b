//! libcurl, behind a small safe [`Easy`] handle: opened at run time in the dynamically linked
//! build, linked in the static musl build.
//!
//! Role: the only libcurl calls of logalarm (`curl:`, `airbrake:`, `webhook:` deliver through
//! it), each with its `// SAFETY:` comment. The dynamically linked binary opens
//! `libcurl.so.4` (or Debian's `libcurl-gnutls.so.4`) with `dlopen` when the first alarm that
//! needs it is configured, so every other start skips loading libcurl's ~30 libraries and
//! running their initialisers (≈ 8 of 13 ms of `logalarm --version` on the test VM, see
//! PERF.md "eighteenth run"); a missing library is one start-up error naming the package.
//! The static musl binary (scripts/static-musl.sh) cannot `dlopen`: there the same table is
//! filled with the functions of the libcurl linked in through `curl-sys`.
//!
//! Invariants: `curl_global_init` runs once, before the first handle, under a `OnceLock`; a
//! handle is used by one thread at a time (it is `Send`, not `Sync`); string and list options
//! outlive the transfers that use them (libcurl copies strings; the lists live in [`Easy`]
//! until replaced or the handle is dropped); every transfer sets its own read and write
//! callbacks, so libcurl never writes a response body to standard output (the log path);
//! a panic inside a callback aborts the transfer instead of unwinding into C.
//! Rejected alternative: the `curl` crate over a build-time link — every start of the binary
//! paid for libcurl's dependencies (GnuTLS, Kerberos, LDAP, OpenSSL's configuration) whether
//! or not an alarm used it.

use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Duration;

type Handle = c_void;
/// What fills an upload buffer and says how much it filled.
pub(crate) type Fill<'a> = dyn FnMut(&mut [u8]) -> usize + 'a;
/// What takes a piece of the response body and says how much it took.
pub(crate) type Take<'a> = dyn FnMut(&[u8]) -> usize + 'a;
type Callback = extern "C" fn(*mut c_char, usize, usize, *mut c_void) -> usize;

/// `struct curl_slist`.
#[repr(C)]
struct SlistNode {
    data: *mut c_char,
    next: *mut SlistNode,
}

/// The first fields of `curl_version_info_data` (curl.h; stable since its first age).
#[repr(C)]
struct VersionInfo {
    age: c_int,
    version: *const c_char,
    version_num: u32,
    host: *const c_char,
    features: c_int,
    ssl_version: *const c_char,
    ssl_version_num: c_long,
    libz_version: *const c_char,
    protocols: *const *const c_char,
}

// libcurl's option, info and error numbers (curl.h).
const OPT_LONG: c_int = 0;
const OPT_POINT: c_int = 10_000;
const OPT_FUNCTION: c_int = 20_000;
const OPT_OFF_T: c_int = 30_000;
const CURLOPT_WRITEDATA: c_int = OPT_POINT + 1;
const CURLOPT_URL: c_int = OPT_POINT + 2;
const CURLOPT_READDATA: c_int = OPT_POINT + 9;
const CURLOPT_ERRORBUFFER: c_int = OPT_POINT + 10;
const CURLOPT_WRITEFUNCTION: c_int = OPT_FUNCTION + 11;
const CURLOPT_READFUNCTION: c_int = OPT_FUNCTION + 12;
const CURLOPT_HTTPHEADER: c_int = OPT_POINT + 23;
const CURLOPT_CUSTOMREQUEST: c_int = OPT_POINT + 36;
const CURLOPT_UPLOAD: c_int = OPT_LONG + 46;
const CURLOPT_SSL_VERIFYPEER: c_int = OPT_LONG + 64;
const CURLOPT_CAINFO: c_int = OPT_POINT + 65;
const CURLOPT_SSL_VERIFYHOST: c_int = OPT_LONG + 81;
const CURLOPT_CAPATH: c_int = OPT_POINT + 97;
const CURLOPT_NOSIGNAL: c_int = OPT_LONG + 99;
const CURLOPT_INFILESIZE_LARGE: c_int = OPT_OFF_T + 115;
const CURLOPT_USE_SSL: c_int = OPT_LONG + 119;
const CURLOPT_POSTFIELDSIZE_LARGE: c_int = OPT_OFF_T + 120;
const CURLOPT_TIMEOUT_MS: c_int = OPT_LONG + 155;
const CURLOPT_CONNECTTIMEOUT_MS: c_int = OPT_LONG + 156;
const CURLOPT_COPYPOSTFIELDS: c_int = OPT_POINT + 165;
const CURLOPT_USERNAME: c_int = OPT_POINT + 173;
const CURLOPT_PASSWORD: c_int = OPT_POINT + 174;
const CURLOPT_MAIL_FROM: c_int = OPT_POINT + 186;
const CURLOPT_MAIL_RCPT: c_int = OPT_POINT + 187;
const CURLINFO_RESPONSE_CODE: c_int = 0x20_0000 + 2;
const CURL_GLOBAL_DEFAULT: c_long = 3;
const CURLVERSION_FOURTH: c_int = 3;
const CURL_ERROR_SIZE: usize = 256;
const CURL_READFUNC_ABORT: usize = 0x1000_0000;
const CURLUSESSL_NONE: c_long = 0;
const CURLUSESSL_ALL: c_long = 3;

/// libcurl's error numbers that decide how a failure is classified.
pub(crate) mod code {
    use std::ffi::c_int;
    pub(crate) const OK: c_int = 0;
    pub(crate) const UNSUPPORTED_PROTOCOL: c_int = 1;
    pub(crate) const URL_MALFORMAT: c_int = 3;
    #[cfg(test)]
    pub(crate) const COULDNT_CONNECT: c_int = 7;
    pub(crate) const REMOTE_ACCESS_DENIED: c_int = 9;
    pub(crate) const OUT_OF_MEMORY: c_int = 27;
    #[cfg(test)]
    pub(crate) const OPERATION_TIMEDOUT: c_int = 28;
    pub(crate) const BAD_FUNCTION_ARGUMENT: c_int = 43;
    #[cfg(test)]
    pub(crate) const SEND_ERROR: c_int = 55;
    pub(crate) const SSL_CERTPROBLEM: c_int = 58;
    /// Also `CURLE_SSL_CACERT` (the same number since libcurl 7.62).
    pub(crate) const PEER_FAILED_VERIFICATION: c_int = 60;
    pub(crate) const USE_SSL_FAILED: c_int = 64;
    pub(crate) const LOGIN_DENIED: c_int = 67;
    pub(crate) const SSL_CACERT_BADFILE: c_int = 77;
    pub(crate) const SSL_ISSUER_ERROR: c_int = 83;
}

/// The libcurl functions logalarm calls.
struct Lib {
    global_init: unsafe extern "C" fn(c_long) -> c_int,
    version_info: unsafe extern "C" fn(c_int) -> *const VersionInfo,
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
    easy_init: unsafe extern "C" fn() -> *mut Handle,
    easy_cleanup: unsafe extern "C" fn(*mut Handle),
    easy_setopt: unsafe extern "C" fn(*mut Handle, c_int, ...) -> c_int,
    easy_perform: unsafe extern "C" fn(*mut Handle) -> c_int,
    easy_getinfo: unsafe extern "C" fn(*mut Handle, c_int, ...) -> c_int,
    slist_append: unsafe extern "C" fn(*mut SlistNode, *const c_char) -> *mut SlistNode,
    slist_free_all: unsafe extern "C" fn(*mut SlistNode),
}

// SAFETY: plain function pointers into a library that is never unloaded.
unsafe impl Send for Lib {}
// SAFETY: as above; the table is only read.
unsafe impl Sync for Lib {}

/// Why libcurl cannot be used (missing, too old, or its initialisation failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LoadError(String);

#[cfg(not(target_env = "musl"))]
fn load() -> Result<Lib, LoadError> {
    // LOGALARM_LIBCURL names the library to open (a path or a soname); else Debian's libcurl4
    // (OpenSSL) first, then libcurl3-gnutls: both speak HTTP(S) and SMTP(S).
    let chosen = std::env::var_os("LOGALARM_LIBCURL").filter(|v| !v.is_empty());
    let names: Vec<CString> = match &chosen {
        Some(v) => {
            use std::os::unix::ffi::OsStrExt;
            vec![CString::new(v.as_bytes())
                .map_err(|_| LoadError("LOGALARM_LIBCURL holds a NUL byte".into()))?]
        }
        None => vec![c"libcurl.so.4".into(), c"libcurl-gnutls.so.4".into()],
    };
    let mut why = String::new();
    let mut handle = std::ptr::null_mut();
    for n in &names {
        // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
        handle = unsafe { libc::dlopen(n.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            break;
        }
        // SAFETY: dlerror returns null or a NUL-terminated string valid until the next call.
        let e = unsafe { libc::dlerror() };
        if !e.is_null() && why.is_empty() {
            // SAFETY: non-null, NUL-terminated (above).
            why = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
        }
    }
    let h = handle;
    if h.is_null() {
        return Err(LoadError(match &chosen {
            Some(v) => format!(
                "LOGALARM_LIBCURL={}: cannot load it: {why}",
                v.to_string_lossy()
            ),
            None => "libcurl is not installed (Debian: apt-get install libcurl4, or \
                     libcurl4t64 on Debian 13)"
                .into(),
        }));
    }
    macro_rules! sym {
        ($name:literal as $t:ty) => {{
            // SAFETY: `h` is a live handle and the name a valid C string.
            let p = unsafe { libc::dlsym(h, $name.as_ptr()) };
            if p.is_null() {
                return Err(LoadError(format!(
                    "the libcurl found lacks {} (libcurl 7.62 or newer needed)",
                    $name.to_string_lossy()
                )));
            }
            // SAFETY: the symbol is the libcurl function of that name, whose C signature
            // (curl.h) matches the field's type.
            unsafe { std::mem::transmute::<*mut c_void, $t>(p) }
        }};
    }
    Ok(Lib {
        global_init: sym!(c"curl_global_init" as unsafe extern "C" fn(c_long) -> c_int),
        version_info: sym!(
            c"curl_version_info" as unsafe extern "C" fn(c_int) -> *const VersionInfo
        ),
        strerror: sym!(c"curl_easy_strerror" as unsafe extern "C" fn(c_int) -> *const c_char),
        easy_init: sym!(c"curl_easy_init" as unsafe extern "C" fn() -> *mut Handle),
        easy_cleanup: sym!(c"curl_easy_cleanup" as unsafe extern "C" fn(*mut Handle)),
        easy_setopt: sym!(
            c"curl_easy_setopt" as unsafe extern "C" fn(*mut Handle, c_int, ...) -> c_int
        ),
        easy_perform: sym!(c"curl_easy_perform" as unsafe extern "C" fn(*mut Handle) -> c_int),
        easy_getinfo: sym!(
            c"curl_easy_getinfo" as unsafe extern "C" fn(*mut Handle, c_int, ...) -> c_int
        ),
        slist_append: sym!(
            c"curl_slist_append"
                as unsafe extern "C" fn(*mut SlistNode, *const c_char) -> *mut SlistNode
        ),
        slist_free_all: sym!(c"curl_slist_free_all" as unsafe extern "C" fn(*mut SlistNode)),
    })
}

#[cfg(target_env = "musl")]
fn load() -> Result<Lib, LoadError> {
    // curl-sys carries the link of the static libcurl (found by pkg-config); the functions
    // are declared here with this module's types, which have the same C layout.
    use curl_sys as _;
    extern "C" {
        fn curl_global_init(flags: c_long) -> c_int;
        fn curl_version_info(age: c_int) -> *const VersionInfo;
        fn curl_easy_strerror(code: c_int) -> *const c_char;
        fn curl_easy_init() -> *mut Handle;
        fn curl_easy_cleanup(h: *mut Handle);
        fn curl_easy_setopt(h: *mut Handle, opt: c_int, ...) -> c_int;
        fn curl_easy_perform(h: *mut Handle) -> c_int;
        fn curl_easy_getinfo(h: *mut Handle, info: c_int, ...) -> c_int;
        fn curl_slist_append(l: *mut SlistNode, s: *const c_char) -> *mut SlistNode;
        fn curl_slist_free_all(l: *mut SlistNode);
    }
    Ok(Lib {
        global_init: curl_global_init,
        version_info: curl_version_info,
        strerror: curl_easy_strerror,
        easy_init: curl_easy_init,
        easy_cleanup: curl_easy_cleanup,
        easy_setopt: curl_easy_setopt,
        easy_perform: curl_easy_perform,
        easy_getinfo: curl_easy_getinfo,
        slist_append: curl_slist_append,
        slist_free_all: curl_slist_free_all,
    })
}

/// libcurl, loaded and initialised once.
fn lib() -> Result<&'static Lib, LoadError> {
    static LIB: OnceLock<Result<Lib, LoadError>> = OnceLock::new();
    LIB.get_or_init(|| {
        let l = load()?;
        // SAFETY: called once, before any handle exists (the OnceLock holds other callers).
        let rc = unsafe { (l.global_init)(CURL_GLOBAL_DEFAULT) };
        if rc != code::OK {
            return Err(LoadError(format!("curl_global_init failed (code {rc})")));
        }
        Ok(l)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The loaded libcurl's version and the protocols it speaks (a start-up check).
pub(crate) fn version() -> Result<(String, Vec<String>), LoadError> {
    let l = lib()?;
    // SAFETY: curl_version_info returns a pointer to static data that lives as long as the
    // library; its version and protocol strings are NUL-terminated, the list ends with NULL.
    unsafe {
        let v = (l.version_info)(CURLVERSION_FOURTH);
        if v.is_null() {
            return Err(LoadError("curl_version_info returned nothing".into()));
        }
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let mut protocols = Vec::new();
        let mut p = (*v).protocols;
        while !p.is_null() && !(*p).is_null() {
            protocols.push(text(*p));
            p = p.add(1);
        }
        Ok((text((*v).version), protocols))
    }
}

/// A libcurl failure: its number, libcurl's description, and the error buffer's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub(crate) code: c_int,
    description: String,
    extra: Option<String>,
}

impl Error {
    /// An error of `code` with libcurl's own description of it.
    pub(crate) fn new(code: c_int) -> Error {
        let description = lib()
            .ok()
            // SAFETY: curl_easy_strerror returns a static NUL-terminated string for any code.
            .map(|l| unsafe { (l.strerror)(code) })
            .filter(|p| !p.is_null())
            // SAFETY: non-null, NUL-terminated, static (above).
            .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("libcurl error {code}"));
        Error {
            code,
            description,
            extra: None,
        }
    }

    /// Not libcurl's: a value logalarm refused to hand it (`what` names it).
    fn refused(what: &str) -> Error {
        Error {
            code: code::BAD_FUNCTION_ARGUMENT,
            description: format!("{what} holds a NUL byte"),
            extra: None,
        }
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// What libcurl wrote in the handle's error buffer for this failure, if anything.
    pub(crate) fn extra_description(&self) -> Option<&str> {
        self.extra.as_deref()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)?;
        match &self.extra {
            Some(x) if !x.is_empty() => write!(f, " ({x})"),
            _ => Ok(()),
        }
    }
}

/// A `curl_slist` owned by Rust.
struct List(*mut SlistNode);

impl List {
    fn build<S: AsRef<str>>(l: &Lib, items: &[S], what: &str) -> Result<List, Error> {
        let mut list = List(std::ptr::null_mut());
        for s in items {
            let c = CString::new(s.as_ref()).map_err(|_| Error::refused(what))?;
            // SAFETY: `c` is a valid C string (libcurl copies it); `list.0` is null or a list
            // built here.
            let next = unsafe { (l.slist_append)(list.0, c.as_ptr()) };
            if next.is_null() {
                return Err(Error::new(code::OUT_OF_MEMORY));
            }
            list.0 = next;
        }
        Ok(list)
    }

    fn free(&mut self, l: &Lib) {
        if !self.0.is_null() {
            // SAFETY: built by curl_slist_append, freed once (then forgotten).
            unsafe { (l.slist_free_all)(self.0) };
            self.0 = std::ptr::null_mut();
        }
    }
}

/// One libcurl easy handle, kept between transfers (connections stay alive), with the lists
/// and error buffer its options point to.
pub(crate) struct Easy {
    h: NonNull<Handle>,
    lib: &'static Lib,
    headers: List,
    rcpts: List,
    errors: Box<[u8; CURL_ERROR_SIZE]>,
}

// SAFETY: a libcurl easy handle may move between threads when used by one at a time; `Easy`
// is not `Sync` and owns its lists and buffer.
unsafe impl Send for Easy {}

impl Easy {
    /// A new handle: libcurl loaded (once) and `curl_easy_init`.
    pub(crate) fn new() -> Result<Easy, Error> {
        let lib = lib().map_err(|e| Error {
            code: code::UNSUPPORTED_PROTOCOL,
            description: e.0,
            extra: None,
        })?;
        // SAFETY: libcurl is initialised (`lib`).
        let h = NonNull::new(unsafe { (lib.easy_init)() })
            .ok_or_else(|| Error::new(code::OUT_OF_MEMORY))?;
        let mut easy = Easy {
            h,
            lib,
            headers: List(std::ptr::null_mut()),
            rcpts: List(std::ptr::null_mut()),
            errors: Box::new([0; CURL_ERROR_SIZE]),
        };
        let buf = easy.errors.as_mut_ptr();
        // SAFETY: the buffer is CURL_ERROR_SIZE bytes, heap-allocated, and lives (never moved)
        // as long as the handle.
        easy.check(unsafe { (lib.easy_setopt)(h.as_ptr(), CURLOPT_ERRORBUFFER, buf) })?;
        Ok(easy)
    }

    fn check(&self, rc: c_int) -> Result<(), Error> {
        if rc == code::OK {
            Ok(())
        } else {
            Err(Error::new(rc))
        }
    }

    /// As `check`, with what libcurl wrote in the error buffer during the transfer.
    fn check_transfer(&self, rc: c_int) -> Result<(), Error> {
        self.check(rc).map_err(|mut e| {
            let len = self.errors.iter().position(|&b| b == 0).unwrap_or(0);
            if len > 0 {
                e.extra = Some(String::from_utf8_lossy(&self.errors[..len]).into_owned());
            }
            e
        })
    }

    fn long(&mut self, opt: c_int, v: c_long) -> Result<(), Error> {
        // SAFETY: a live handle; `opt` is one of the options above that take a long.
        self.check(unsafe { (self.lib.easy_setopt)(self.h.as_ptr(), opt, v) })
    }

    fn off_t(&mut self, opt: c_int, v: u64) -> Result<(), Error> {
        let v = i64::try_from(v).unwrap_or(i64::MAX);
        // SAFETY: a live handle; `opt` is one of the options above that take a curl_off_t (i64).
        self.check(unsafe { (self.lib.easy_setopt)(self.h.as_ptr(), opt, v) })
    }

    /// A string option (`what` names it in the error when it holds a NUL byte).
    fn string(&mut self, opt: c_int, v: &str, what: &str) -> Result<(), Error> {
        let c = CString::new(v).map_err(|_| Error::refused(what))?;
        // SAFETY: a live handle; `opt` takes a C string, which libcurl copies.
        self.check(unsafe { (self.lib.easy_setopt)(self.h.as_ptr(), opt, c.as_ptr()) })
    }

    fn millis(d: Duration) -> c_long {
        c_long::try_from(d.as_millis()).unwrap_or(c_long::MAX)
    }

    pub(crate) fn url(&mut self, url: &str) -> Result<(), Error> {
        self.string(CURLOPT_URL, url, "the URL")
    }

    /// No signals (libcurl runs on lane threads).
    pub(crate) fn no_signal(&mut self) -> Result<(), Error> {
        self.long(CURLOPT_NOSIGNAL, 1)
    }

    /// The whole transfer's limit (zero: none, as in libcurl).
    pub(crate) fn timeout(&mut self, d: Duration) -> Result<(), Error> {
        self.long(CURLOPT_TIMEOUT_MS, Self::millis(d))
    }

    pub(crate) fn connect_timeout(&mut self, d: Duration) -> Result<(), Error> {
        self.long(CURLOPT_CONNECTTIMEOUT_MS, Self::millis(d))
    }

    /// Verify the peer's certificate and host name (both, or neither).
    pub(crate) fn verify(&mut self, on: bool) -> Result<(), Error> {
        self.long(CURLOPT_SSL_VERIFYPEER, c_long::from(on))?;
        self.long(CURLOPT_SSL_VERIFYHOST, if on { 2 } else { 0 })
    }

    pub(crate) fn cainfo(&mut self, file: &str) -> Result<(), Error> {
        self.string(CURLOPT_CAINFO, file, "SSL_CERT_FILE")
    }

    pub(crate) fn capath(&mut self, dir: &str) -> Result<(), Error> {
        self.string(CURLOPT_CAPATH, dir, "SSL_CERT_DIR")
    }

    /// `CURLOPT_USE_SSL`: require TLS (STARTTLS for smtp://) when `require`, else none asked.
    pub(crate) fn use_ssl(&mut self, require: bool) -> Result<(), Error> {
        let level = if require {
            CURLUSESSL_ALL
        } else {
            CURLUSESSL_NONE
        };
        self.long(CURLOPT_USE_SSL, level)
    }

    pub(crate) fn username(&mut self, user: &str) -> Result<(), Error> {
        self.string(CURLOPT_USERNAME, user, "auth_user")
    }

    /// The password (never in an error: a NUL byte is reported without the text).
    pub(crate) fn password(&mut self, pass: &str) -> Result<(), Error> {
        self.string(CURLOPT_PASSWORD, pass, "auth_pass")
    }

    /// An upload of `size` bytes (SMTP's `DATA`), read from the transfer's `read` callback.
    pub(crate) fn upload(&mut self, size: u64) -> Result<(), Error> {
        self.long(CURLOPT_UPLOAD, 1)?;
        self.off_t(CURLOPT_INFILESIZE_LARGE, size)
    }

    /// An HTTP request: `method` with a copy of `body` and these header lines.
    pub(crate) fn request<S: AsRef<str>>(
        &mut self,
        method: &str,
        headers: &[S],
        body: &[u8],
    ) -> Result<(), Error> {
        self.long(CURLOPT_UPLOAD, 0)?;
        self.off_t(CURLOPT_POSTFIELDSIZE_LARGE, body.len() as u64)?;
        // SAFETY: a live handle; libcurl copies POSTFIELDSIZE bytes from `body` now.
        self.check(unsafe {
            (self.lib.easy_setopt)(self.h.as_ptr(), CURLOPT_COPYPOSTFIELDS, body.as_ptr())
        })?;
        self.string(CURLOPT_CUSTOMREQUEST, method, "method")?;
        self.list(CURLOPT_HTTPHEADER, headers, "a header", |e| &mut e.headers)
    }

    /// The SMTP envelope: `MAIL FROM` and one `RCPT TO` per entry.
    pub(crate) fn envelope<S: AsRef<str>>(&mut self, from: &str, rcpts: &[S]) -> Result<(), Error> {
        self.string(CURLOPT_MAIL_FROM, from, "mail_from")?;
        self.list(CURLOPT_MAIL_RCPT, rcpts, "mail_to", |e| &mut e.rcpts)
    }

    /// List option `opt` set to `items`; the list is kept in `slot` (the one it replaces is
    /// freed) until replaced again or the handle is dropped, after any transfer that uses it.
    fn list<S: AsRef<str>>(
        &mut self,
        opt: c_int,
        items: &[S],
        what: &str,
        slot: fn(&mut Easy) -> &mut List,
    ) -> Result<(), Error> {
        let mut list = List::build(self.lib, items, what)?;
        // SAFETY: a live handle; `opt` takes a curl_slist, which lives in `slot` (above).
        let rc = unsafe { (self.lib.easy_setopt)(self.h.as_ptr(), opt, list.0) };
        if rc != code::OK {
            list.free(self.lib);
            return self.check(rc);
        }
        std::mem::swap(slot(self), &mut list);
        list.free(self.lib);
        Ok(())
    }

    /// Run the transfer: the request body (an upload) comes from `read` when given, the
    /// response body goes to `write` (what it does not take aborts the transfer).
    pub(crate) fn perform(
        &mut self,
        read: Option<&mut Fill<'_>>,
        write: &mut Take<'_>,
    ) -> Result<(), Error> {
        self.errors[0] = 0;
        let mut reader = Reader(read);
        let mut writer = Writer(write);
        let h = self.h.as_ptr();
        let (rf, wf): (Callback, Callback) = (read_cb, write_cb);
        let rd: *mut Reader<'_, '_> = &mut reader;
        let wd: *mut Writer<'_, '_> = &mut writer;
        // SAFETY: a live handle; the callbacks have libcurl's signature and their data pointers
        // point at `reader` and `writer`, which outlive `curl_easy_perform` below; both are
        // cleared again before they go out of scope.
        let rc = unsafe {
            let set = (self.lib.easy_setopt)(h, CURLOPT_READFUNCTION, rf);
            let set = if set == code::OK {
                (self.lib.easy_setopt)(h, CURLOPT_READDATA, rd)
            } else {
                set
            };
            let set = if set == code::OK {
                (self.lib.easy_setopt)(h, CURLOPT_WRITEFUNCTION, wf)
            } else {
                set
            };
            let set = if set == code::OK {
                (self.lib.easy_setopt)(h, CURLOPT_WRITEDATA, wd)
            } else {
                set
            };
            let rc = if set == code::OK {
                (self.lib.easy_perform)(h)
            } else {
                set
            };
            let none: *mut c_void = std::ptr::null_mut();
            (self.lib.easy_setopt)(h, CURLOPT_READDATA, none);
            (self.lib.easy_setopt)(h, CURLOPT_WRITEDATA, none);
            rc
        };
        self.check_transfer(rc)
    }

    /// The last response code (HTTP status or SMTP reply), 0 when there was none.
    pub(crate) fn response_code(&self) -> u32 {
        let mut v: c_long = 0;
        // SAFETY: a live handle; CURLINFO_RESPONSE_CODE writes a long through the pointer.
        let rc = unsafe {
            (self.lib.easy_getinfo)(
                self.h.as_ptr(),
                CURLINFO_RESPONSE_CODE,
                &mut v as *mut c_long,
            )
        };
        if rc == code::OK {
            u32::try_from(v).unwrap_or(0)
        } else {
            0
        }
    }
}

impl Drop for Easy {
    fn drop(&mut self) {
        // SAFETY: the handle is live and cleaned up once; the lists it pointed to are freed
        // after it.
        unsafe { (self.lib.easy_cleanup)(self.h.as_ptr()) };
        self.headers.free(self.lib);
        self.rcpts.free(self.lib);
    }
}

impl std::fmt::Debug for Easy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Easy")
    }
}

/// The read callback's data: what fills libcurl's upload buffer (none: nothing to send).
struct Reader<'a, 'b>(Option<&'a mut Fill<'b>>);
/// The write callback's data: what takes the response body.
struct Writer<'a, 'b>(&'a mut Take<'b>);

extern "C" fn read_cb(buf: *mut c_char, size: usize, n: usize, data: *mut c_void) -> usize {
    let len = size.saturating_mul(n);
    if data.is_null() || buf.is_null() {
        return CURL_READFUNC_ABORT;
    }
    // SAFETY: `data` is the `Reader` `perform` set for this transfer (alive during it); `buf`
    // holds `size * n` writable bytes (libcurl's contract).
    let (reader, buf) = unsafe {
        (
            &mut *(data as *mut Reader<'_, '_>),
            std::slice::from_raw_parts_mut(buf as *mut u8, len),
        )
    };
    let Some(f) = reader.0.as_mut() else {
        return 0;
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(buf).min(len)))
        .unwrap_or(CURL_READFUNC_ABORT)
}

extern "C" fn write_cb(buf: *mut c_char, size: usize, n: usize, data: *mut c_void) -> usize {
    let len = size.saturating_mul(n);
    if data.is_null() || (buf.is_null() && len > 0) {
        return 0;
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `buf` holds `size * n` readable bytes (libcurl's contract).
        unsafe { std::slice::from_raw_parts(buf as *const u8, len) }
    };
    // SAFETY: `data` is the `Writer` `perform` set for this transfer (alive during it).
    let writer = unsafe { &mut *(data as *mut Writer<'_, '_>) };
    // A short count (or a panic, as 0) makes libcurl end the transfer with an error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (writer.0)(bytes))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_libcurl_description() {
        // The library is on every machine the tests run on (scripts/setup.sh).
        let e = Error::new(code::COULDNT_CONNECT);
        assert_eq!(e.code, code::COULDNT_CONNECT);
        assert!(e.description().contains("connect"), "{e}");
        let (version, protocols) = version().unwrap();
        assert!(!version.is_empty());
        assert!(protocols.iter().any(|p| p == "smtp"), "{protocols:?}");
    }

    #[test]
    fn a_nul_byte_is_refused_by_name() {
        let mut easy = Easy::new().unwrap();
        let e = easy.password("se\0cret").unwrap_err();
        assert_eq!(e.to_string(), "auth_pass holds a NUL byte");
        let e = easy.envelope("<a@b>", &["<c\0@d>"]).unwrap_err();
        assert_eq!(e.to_string(), "mail_to holds a NUL byte");
        easy.request("PUT", &["X: 1", "Expect:"], b"body").unwrap();
    }
}
