//! The libcurl options the safe `curl` crate does not expose: the SMTP envelope
//! (`CURLOPT_MAIL_FROM`, `CURLOPT_MAIL_RCPT`) and `CURLOPT_USE_SSL`.
//!
//! Role: the only `curl_sys` calls of logalarm, each with its `// SAFETY:` comment.
//! Invariant: a recipient list outlives the transfer that uses it (it lives in [`MailEnvelope`],
//! which the caller keeps until the transfer is done).

/// Why the SMTP envelope could not be set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("{0} holds a NUL byte")]
    Nul(&'static str),
    #[error("out of memory building the recipient list")]
    OutOfMemory,
    #[error("{0}")]
    Curl(curl::Error),
}

/// The SMTP envelope of one libcurl easy handle: `MAIL FROM` and the `RCPT TO` list, which
/// the safe `curl` API does not expose. The recipient list lives as long as this value, so it
/// must outlive the transfer.
pub(crate) struct MailEnvelope {
    rcpts: *mut curl_sys::curl_slist,
}

// SAFETY: the list is owned by this value alone and only handed to libcurl by pointer.
unsafe impl Send for MailEnvelope {}

impl MailEnvelope {
    /// Set `MAIL FROM` and `RCPT TO` on `easy`. Strings with NUL bytes are refused.
    pub(crate) fn set(
        easy: &curl::easy::Easy,
        from: &str,
        rcpts: &[String],
    ) -> Result<MailEnvelope, EnvelopeError> {
        let from = std::ffi::CString::new(from).map_err(|_| EnvelopeError::Nul("mail_from"))?;
        let mut env = MailEnvelope {
            rcpts: std::ptr::null_mut(),
        };
        for r in rcpts {
            let c =
                std::ffi::CString::new(r.as_str()).map_err(|_| EnvelopeError::Nul("mail_to"))?;
            // SAFETY: `c` is a valid C string (copied by libcurl); `env.rcpts` is null or a list
            // this function built.
            let next = unsafe { curl_sys::curl_slist_append(env.rcpts, c.as_ptr()) };
            if next.is_null() {
                return Err(EnvelopeError::OutOfMemory);
            }
            env.rcpts = next;
        }
        // SAFETY: `easy.raw()` is a live handle; libcurl copies string options; the list
        // pointer stays valid until `env` is dropped, which the caller keeps past the transfer.
        let rc = unsafe {
            let h = easy.raw();
            let a = curl_sys::curl_easy_setopt(h, curl_sys::CURLOPT_MAIL_FROM, from.as_ptr());
            if a != curl_sys::CURLE_OK {
                a
            } else {
                curl_sys::curl_easy_setopt(h, curl_sys::CURLOPT_MAIL_RCPT, env.rcpts)
            }
        };
        if rc != curl_sys::CURLE_OK {
            return Err(EnvelopeError::Curl(curl::Error::new(rc)));
        }
        Ok(env)
    }
}

impl Drop for MailEnvelope {
    fn drop(&mut self) {
        if !self.rcpts.is_null() {
            // SAFETY: the list was built by curl_slist_append and is freed once.
            unsafe { curl_sys::curl_slist_free_all(self.rcpts) };
        }
    }
}

/// `CURLOPT_USE_SSL`: require TLS (STARTTLS for smtp://) when `require`, else use it if offered.
pub(crate) fn curl_use_ssl(easy: &curl::easy::Easy, require: bool) -> Result<(), curl::Error> {
    let level: libc::c_long = if require {
        curl_sys::CURLUSESSL_ALL as libc::c_long
    } else {
        curl_sys::CURLUSESSL_NONE as libc::c_long
    };
    // SAFETY: `easy.raw()` is a live handle and CURLOPT_USE_SSL takes a long.
    let rc = unsafe { curl_sys::curl_easy_setopt(easy.raw(), curl_sys::CURLOPT_USE_SSL, level) };
    if rc == curl_sys::CURLE_OK {
        Ok(())
    } else {
        Err(curl::Error::new(rc))
    }
}
